"""One module per ``citywatch`` subcommand.

Each module defines ``register(sub)``, which adds its parser to the
subparsers and sets ``func`` to the function that runs it (``args -> exit
code``). ``flows.cli`` imports the modules listed in ``COMMANDS``.
"""

COMMANDS = [
    "flows.commands.demo",
    "flows.commands.replay",
    "flows.commands.generate",
]
