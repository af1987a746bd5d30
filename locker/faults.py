"""Fault points: named places where a test can make Locker die or wait.

A test sets ``LOCKER_FAULT=NAME`` in the environment of a Locker command;
when the command reaches ``point(NAME)`` it kills itself with SIGKILL, as a
power cut or ``kill -9`` would, so that the next command's recovery can be
tested. ``LOCKER_PAUSE=NAME`` with ``LOCKER_PAUSE_FILE=PATH`` makes the
command create PATH at the point and wait there (at most a minute) until
the test removes it, so that a race can be played in a chosen order.
Without the variables a point costs two dictionary look-ups.

Points the core and the shipped backends provide:

``bridge-created``
    The link backend created the bridge but has not yet set its owner
    alias.
``rules-half-applied``
    Between two kernel transactions of one change (the iptables backend's
    filter and nat commits).
``containers-stopped``
    ``stop`` and ``cleanup`` stopped the containers and have not yet
    removed their rules (or the bridge).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENVIRONMENT_VARIABLE = "LOCKER_FAULT"
PAUSE_VARIABLE = "LOCKER_PAUSE"
PAUSE_FILE_VARIABLE = "LOCKER_PAUSE_FILE"
PAUSE_LIMIT = 60.0


def point(name: str) -> None:
    """Die or wait here when the test asked for it."""
    if os.environ.get(ENVIRONMENT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(PAUSE_VARIABLE) == name:
        marker = Path(os.environ[PAUSE_FILE_VARIABLE])
        marker.touch()
        deadline = time.monotonic() + PAUSE_LIMIT
        while marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
