"""Every change a command makes, as it makes it, or (``--dry-run``) instead
of making it.

Operations do each change through ``Journal.change``: a real run calls the
action and then reports the change; a dry run reports what it would do
and calls nothing. Both runs take the same path through the operations,
so the dry run lists exactly what the real run then does.

Signals: the CLI's SIGINT, SIGTERM and SIGHUP handler is ``interrupt``. While a
change is being made (in any thread) it only remembers the signal; the
change finishes, is recorded and reported, and then ``Interrupted`` is
raised, also before any further change. So a signal never splits a
change (a backend's two kernel commits, a container's start and its
"started" line), and every change a command made is reported.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import TypeVar

from locker.errors import Interrupted

T = TypeVar("T")
CONTAINER = "container"


@dataclass(frozen=True)
class Change:
    """One change: ``subject`` (a container, or the project) ``verb``
    (past tense, as the real run reports it) ``what``.

    For example ``Change("web", "started", "container", "10.1.1.2")`` or
    ``Change("web", "added", "forward", "8080/tcp -> 10.1.1.2:80")``.
    """

    subject: str
    verb: str
    what: str
    detail: str = ""

    def line(self, dry_run: bool = False) -> str:
        """``web: started (10.1.1.2)``, ``web: added forward 8080/tcp -> ...``,
        in a dry run ``web: would start (10.1.1.2)``; a container's own
        changes do not repeat the word "container"."""
        words = [would(self.verb) if dry_run else self.verb]
        if self.what != CONTAINER:
            words.append(self.what)
        if self.detail:
            words.append(self.detail)
        return f"{self.subject}: {' '.join(words)}"

    def to_json(self) -> dict:
        return {"subject": self.subject, "change": self.verb, "what": self.what,
                "detail": self.detail}


#: The verbs changes use, past tense to infinitive.
INFINITIVES = {
    "added": "add", "adopted": "adopt", "brought": "bring", "configured": "configure",
    "created": "create", "frozen": "freeze", "removed": "remove", "restored": "restore",
    "rewrote": "rewrite", "set": "set", "started": "start", "stopped": "stop",
    "thawed": "thaw", "left": "leave", "updated": "update",
}


def would(verb: str) -> str:
    """``removed (from iptables)`` -> ``would remove (from iptables)``."""
    first, _, rest = verb.partition(" ")
    return " ".join(["would", INFINITIVES.get(first, first), *([rest] if rest else [])])


class _Signals:
    """Process-wide: the changes being made now (in any thread), the signal
    that arrived (None: none), and whether the command has finished (then
    a signal is ignored: nothing is left to interrupt)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0
        self.pending: int | None = None
        self.finished = False

    def reset(self) -> None:
        with self.lock:
            self.active, self.pending, self.finished = 0, None, False


SIGNALS = _Signals()


#: The signals that end a command like Ctrl-C (``interrupt`` handles them):
#: a terminal closing sends SIGHUP, a service manager SIGTERM.
SIGNALLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def interrupt(signum: int, frame: FrameType | None = None) -> None:
    """The handler of SIGINT, SIGTERM and SIGHUP: raise ``Interrupted`` now, unless
    a change is being made (then right after it is recorded) or a
    finalizer (``__del__``) runs, which cannot pass an exception on: the
    signal is then delivered again a moment later."""
    if SIGNALS.finished:
        return
    if SIGNALS.pending is None:
        SIGNALS.pending = signum
    if SIGNALS.active:
        return
    if _in_finalizer(frame):
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
    raise Interrupted(SIGNALS.pending)


def _in_finalizer(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


def check_interrupted() -> None:
    """Raise ``Interrupted`` if a signal arrived."""
    if SIGNALS.pending is not None and not SIGNALS.finished:
        raise Interrupted(SIGNALS.pending)


@contextmanager
def whole(interruptible: bool = False) -> Iterator[None]:
    """A change a signal must not split: no signal interrupts what runs
    inside; one that arrived is raised before and after. ``interruptible``:
    a signal may interrupt it (a download that may take half an hour), but
    none starts it once a signal arrived."""
    check_interrupted()
    if not interruptible:
        with SIGNALS.lock:
            SIGNALS.active += 1
    try:
        yield
    finally:
        if not interruptible:
            with SIGNALS.lock:
                SIGNALS.active -= 1
    check_interrupted()


@dataclass
class Journal:
    """The changes of one command. ``report`` hears each change's line as it
    happens (a Context sets its ``say`` where it is None)."""

    dry_run: bool = False
    report: Callable[[str], None] | None = None
    changes: list[Change] = field(default_factory=list)
    #: shows a container's change under way on a terminal (``locker.cli.progress``)
    progress: object | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def change(self, change: Change, action: Callable[[], T],
               simulated: T | None = None, interruptible: bool = False) -> T | None:
        """Make the change (a real run) and record it; a dry run records it
        and returns ``simulated`` instead of the action's result. A signal
        waits until the change is recorded (see ``whole``)."""
        with whole(interruptible):
            if self.dry_run:
                result = simulated
            elif self.progress is not None and change.what == CONTAINER:
                with self.progress.step(change):
                    result = action()
            else:
                result = action()
            self.record(change)
        return result

    def changes_many(self, changes: list[Change], action: Callable[[], object]) -> None:
        """Several changes made by one action (one kernel transaction)."""
        if not changes:
            return
        with whole():
            if not self.dry_run:
                action()
            for change in changes:
                self.record(change)

    def record(self, change: Change) -> None:
        """Containers change in parallel: one line at a time, in the order
        the changes are made."""
        with self._lock:
            self.changes.append(change)
            if self.progress is not None:
                self.progress.clear()
            if self.report is not None:
                self.report(change.line(self.dry_run))

    def unless_dry(self, action: Callable[[], object]) -> None:
        """Bookkeeping that is no change to report (the host state); a
        signal does not split it either."""
        if not self.dry_run:
            with whole():
                action()
