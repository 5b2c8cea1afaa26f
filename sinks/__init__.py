"""Outputs: Redis dispatch of work orders, dead letters, alert files."""
