"""Progress on a terminal: while a container's change takes more than a
second (a create that downloads an image, the start or stop of many
containers), one status line on stderr says what is under way and for how
long: ``creating web, db ... 12s``. It is cleared before every line the
command reports, and never shown when stderr is not a terminal, with
``NO_COLOR``, ``TERM=dumb`` or ``--no-color``.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from locker.journal import INFINITIVES, Change


def gerund(verb: str) -> str:
    """``created`` -> ``creating``, ``stopped`` -> ``stopping``."""
    word = INFINITIVES.get(verb.split(" ")[0], verb)
    if word in ("stop", "set"):
        return word + word[-1] + "ing"
    if word.endswith("e") and not word.endswith("ee"):
        return word[:-1] + "ing"
    return word + "ing"


class Progress:
    """The status line of the changes under way (any thread)."""

    def __init__(self, stream: TextIO, delay: float = 1.0, interval: float = 1.0) -> None:
        self._stream = stream
        self._delay = delay
        self._interval = interval
        self._lock = threading.Lock()
        self._running: dict[int, tuple[str, str, float]] = {}
        self._thread: threading.Thread | None = None
        self._shown = False
        self._next = 0

    @contextmanager
    def step(self, change: Change) -> Iterator[None]:
        with self._lock:
            key = self._next
            self._next += 1
            self._running[key] = (gerund(change.verb), change.subject, time.monotonic())
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="locker-progress")
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                del self._running[key]
                self._clear()

    def clear(self) -> None:
        """Before a line is printed."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        if self._shown:
            self._stream.write("\r\033[K")
            self._stream.flush()
            self._shown = False

    def _loop(self) -> None:
        while True:
            time.sleep(self._interval)
            with self._lock:
                if not self._running:
                    self._thread = None
                    return
                now = time.monotonic()
                oldest = min(start for _, _, start in self._running.values())
                if now - oldest < self._delay:
                    continue
                doing: dict[str, list[str]] = {}
                for verb, subject, _ in self._running.values():
                    doing.setdefault(verb, []).append(subject)
                text = "; ".join(f"{verb} {', '.join(subjects)}"
                                 for verb, subjects in doing.items())
                text = f"{text} ... {int(now - oldest)}s"
                width = shutil.get_terminal_size((80, 24)).columns - 1
                self._stream.write("\r\033[K" + text[:width])
                self._stream.flush()
                self._shown = True
