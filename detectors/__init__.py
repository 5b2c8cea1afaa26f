"""Pure detection logic: events in, alerts out. No Bytewax, Redis, Kafka or file I/O."""
