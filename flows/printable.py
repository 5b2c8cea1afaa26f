"""Text from input made safe for a terminal or a log line.

Ids, names, notes and reasons come from events, gateways and people; a control
character in them (an ANSI escape, a newline, a carriage return, a C1 code)
could recolour a terminal, move its cursor or forge a log line. :func:`printable`
shows each as a visible escape, and :func:`echo` prints one line through it;
every command-line table and the text log format use them.

>>> printable("veh-1\\x1b[2J\\nFORGED line\\t\\x85\\u2028ok")
'veh-1\\\\x1b[2J\\\\nFORGED line\\\\t\\\\x85\\\\u2028ok'
>>> printable("南通 ok")
'南通 ok'
"""

from __future__ import annotations

import sys
from typing import TextIO

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(code: int) -> str:
    ch = chr(code)
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


# C0, DEL, C1, and the Unicode line and paragraph separators.
_TABLE = {c: _escape(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}


def printable(text: object) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\n``)."""
    return str(text).translate(_TABLE)


def echo(line: object = "", *, file: TextIO | None = None, flush: bool = False) -> None:
    """Print one line with its control characters escaped."""
    print(printable(line), file=file if file is not None else sys.stdout, flush=flush)
