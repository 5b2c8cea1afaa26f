"""One module per ``citywatch`` subcommand.

Each module defines ``register(sub)``, which adds its parser to the
subparsers and sets ``func`` to the function that runs it (``args -> exit
code``). ``flows.cli`` imports the modules listed in ``COMMANDS``.
"""

COMMANDS = [
    "flows.commands.demo",
    "flows.commands.replay",
    "flows.commands.generate",
    "flows.commands.run",
    "flows.commands.record",
    "flows.commands.zones",
    "flows.commands.console",
    "flows.commands.anomaly",
    "flows.commands.route",
    "flows.commands.officer",
    "flows.commands.escalate",
    "flows.commands.report",
    "flows.commands.silence",
    "flows.commands.bench",
]
