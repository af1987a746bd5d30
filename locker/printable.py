"""Text from outside Locker made safe to print on a terminal.

A container writes its own ``/etc/hosts``, the kernel hands back interface
names and rule comments, a file holds whatever bytes it holds: printed raw,
an ``ESC ] 0 ; ... BEL`` retitles the terminal, ``ESC [ 31 m`` recolours
the lines after it, a carriage return overwrites what came before, a lone
surrogate (an undecodable byte kept by ``surrogateescape``) crashes the
writer. ``printable`` turns each such character into a visible escape, so
the text stays on one line and shows what it really holds.
"""

from __future__ import annotations

import re

#: What is escaped: every C0 control (tab and newline included: the fields
#: printed are single-line), DEL, every C1 control, the Unicode line and
#: paragraph separators, the bidirectional embedding, override and isolate
#: controls (they reorder what follows them on the line), lone surrogates,
#: and the backslash itself, so that an escape in the output can only have
#: come from ``printable``.
UNPRINTABLE = re.compile("[\\\\\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
                         "\ud800-\udfff]")


def printable(text: str) -> str:
    """``text`` with every character of ``UNPRINTABLE`` written as a
    visible escape: ``\\xNN`` below U+0100, ``\\uNNNN`` above, and ``\\\\``
    for a backslash. Everything else, non-ASCII letters included, is kept.
    Linear in the length of ``text``."""
    return UNPRINTABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
