"""``locker.printable``: text from containers, the kernel and files, safe
to print."""

from __future__ import annotations

import pytest

from locker.printable import printable

HOSTILE_HOSTS_LINE = "6.6.6.6 bank.example\x1b]0;PWNED\x07\x1b[31m # locker"


def test_terminal_escape_sequences_become_visible_text() -> None:
    shown = printable(HOSTILE_HOSTS_LINE)
    assert shown == "6.6.6.6 bank.example\\x1b]0;PWNED\\x07\\x1b[31m # locker"
    assert shown.isprintable()


@pytest.mark.parametrize("char, shown", [
    ("\x00", "\\x00"), ("\t", "\\x09"), ("\n", "\\x0a"), ("\r", "\\x0d"), ("\x1f", "\\x1f"),
    ("\x7f", "\\x7f"), ("\x80", "\\x80"), ("\x9b", "\\x9b"), ("\x9f", "\\x9f"),
    ("\u2028", "\\u2028"), ("\u2029", "\\u2029"), ("\u202e", "\\u202e"), ("\u2066", "\\u2066"),
    ("\udcff", "\\udcff"), ("\ud800", "\\ud800"), ("\\", "\\\\"),
])
def test_each_unprintable_character_is_escaped(char: str, shown: str) -> None:
    assert printable(f"a{char}b") == f"a{shown}b"


def test_every_control_character_is_escaped() -> None:
    controls = "".join(map(chr, [*range(0x20), *range(0x7f, 0xa0)]))
    shown = printable(controls)
    assert shown.isprintable() and shown.isascii()
    assert shown.count("\\x") == len(controls)


@pytest.mark.parametrize("text", [
    "", "web.example.net", "10.1.1.2 db database # locker", "Grüße, ☃, 日本語, é", "a b",
    "\xa0\xff", "locker:demo:web:dnat",
])
def test_ordinary_text_is_kept(text: str) -> None:
    assert printable(text) == text


def test_undecodable_bytes_can_be_printed_after_escaping() -> None:
    text = b"caf\xe9\x1b[2J".decode("utf-8", "surrogateescape")
    shown = printable(text)
    assert shown == "caf\\udce9\\x1b[2J"
    shown.encode("utf-8")  # a lone surrogate would raise here


def test_escapes_cannot_be_forged_by_the_text() -> None:
    assert printable("\\x1b") != printable("\x1b")
