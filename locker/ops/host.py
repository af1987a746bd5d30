"""Every project of the host: ``ls`` and ``restore``, from the host state."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from locker import diff
from locker.context import Context
from locker.ops import network
from locker.state import ProjectRecord


@dataclass(frozen=True)
class ProjectSummary:
    """One line of ``locker ls``."""

    record: ProjectRecord
    file_exists: bool
    running: int = 0
    total: int = 0
    complete: bool | None = None  # None: could not be checked
    problem: str | None = None


def summarize(record: ProjectRecord, open_project: Callable[[ProjectRecord], Context]
              ) -> ProjectSummary:
    """What ``ls`` shows of one project: its containers running/total and
    whether its network is complete, checked against the kernel."""
    if not Path(record.file).exists():
        return ProjectSummary(record, False, total=len(record.containers),
                              problem="its project file is gone")
    try:
        ctx = open_project(record)
        facts = network.read_all(ctx)
        result = network.compute_diff(ctx, facts)
    except Exception as exc:  # one broken project must not hide the others
        return ProjectSummary(record, True, problem=str(exc).splitlines()[0])
    differences = [i for i in result.differences if i.kind != diff.CONTAINER]
    return ProjectSummary(record, True, len(facts.running), len(facts.states),
                          complete=not differences)


@dataclass(frozen=True)
class Restored:
    project: str
    changes: int
    error: str | None = None
    skipped: str | None = None


def restore(ctx: Context) -> Restored:
    """Re-apply a project's bridge, network rules, forwards and links when
    any of its containers runs, without restarting any."""
    facts = network.read_containers(ctx)
    before = len(ctx.journal.changes)
    if not facts.running:
        return Restored(ctx.project.name, 0, skipped="no container runs")
    network.bring_up(ctx, facts)
    network.repair(ctx, facts, {diff.FORWARD, diff.LINK, diff.RULE}, None)
    return Restored(ctx.project.name, len(ctx.journal.changes) - before)

