"""Integrations: work orders out to department systems and the centre's analysis systems.

Every output follows the live feed ``{P}:feed:{live}`` through its own Redis
consumer group, so the dispatch and lifecycle scripts know nothing of them:

- :mod:`~citywatch.sinks.integrations.webhooks`: subscriptions and the relay
  that fans feed events out to one delivery stream per subscription;
- :mod:`~citywatch.sinks.integrations.delivery`: the signed, retried,
  dead-lettered HTTP deliveries (a worker thread per subscription);
- :mod:`~citywatch.sinks.integrations.kafka_out`: alerts and work-order
  changes to Kafka topics;
- :mod:`~citywatch.sinks.integrations.events`: the event catalogue and the
  JSON documents all of them send;
- :mod:`~citywatch.sinks.integrations.settings`: the ``[[webhooks]]``,
  ``[outputs.webhooks]``, ``[outputs.kafka]`` and ``[api]`` configuration.
"""
