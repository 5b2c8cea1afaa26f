"""One module per ``citywatch`` subcommand.

Each module defines ``register(sub)``, which adds its parser to the
subparsers and sets ``func`` to the function that runs it (``args -> exit
code``). ``citywatch.flows.cli`` imports the modules listed in ``COMMANDS``.
"""

COMMANDS = [
    "citywatch.flows.commands.demo",
    "citywatch.flows.commands.replay",
    "citywatch.flows.commands.generate",
    "citywatch.flows.commands.run",
    "citywatch.flows.commands.record",
    "citywatch.flows.commands.zones",
    "citywatch.flows.commands.console",
    "citywatch.flows.commands.anomaly",
    "citywatch.flows.commands.route",
    "citywatch.flows.commands.officer",
    "citywatch.flows.commands.escalate",
    "citywatch.flows.commands.report",
    "citywatch.flows.commands.silence",
    "citywatch.flows.commands.bench",
    "citywatch.flows.commands.config",
    "citywatch.flows.commands.import_tracks",
    "citywatch.flows.commands.webhooks",
    "citywatch.flows.commands.api",
    "citywatch.flows.commands.outputs",
    "citywatch.flows.commands.redis_keys",
]
