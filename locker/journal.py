"""Every change a command makes, as it makes it, or (``--dry-run``) instead
of making it.

Operations do each change through ``Journal.change``: a real run calls the
action and then reports the change; a dry run reports what it would do
and calls nothing. Both runs take the same path through the operations,
so the dry run lists exactly what the real run then does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

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


@dataclass
class Journal:
    """The changes of one command. ``report`` hears each change's line as it
    happens (a Context sets its ``say`` where it is None)."""

    dry_run: bool = False
    report: Callable[[str], None] | None = None
    changes: list[Change] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def change(self, change: Change, action: Callable[[], T],
               simulated: T | None = None) -> T | None:
        """Make the change (a real run) and record it; a dry run records it
        and returns ``simulated`` instead of the action's result."""
        result = simulated if self.dry_run else action()
        self.record(change)
        return result

    def changes_many(self, changes: list[Change], action: Callable[[], object]) -> None:
        """Several changes made by one action (one kernel transaction)."""
        if not changes:
            return
        if not self.dry_run:
            action()
        for change in changes:
            self.record(change)

    def record(self, change: Change) -> None:
        """Containers change in parallel: one line at a time, in the order
        the changes are made."""
        with self._lock:
            self.changes.append(change)
            if self.report is not None:
                self.report(change.line(self.dry_run))

    def unless_dry(self, action: Callable[[], object]) -> None:
        """Bookkeeping that is no change to report (the host state)."""
        if not self.dry_run:
            action()
