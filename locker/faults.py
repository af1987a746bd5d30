"""Fault points: named places where a test can make Locker die.

A test sets ``LOCKER_FAULT=NAME`` in the environment of a Locker command;
when the command reaches ``point(NAME)`` it kills itself with SIGKILL, as a
power cut or ``kill -9`` would, so that the next command's recovery can be
tested. Without the variable a point costs one dictionary look-up.

Points the core and the shipped backends provide:

``bridge-created``
    The link backend created the bridge but has not yet set its owner
    alias.
``rules-half-applied``
    Between two kernel transactions of one change (the iptables backend's
    filter and nat commits).
"""

from __future__ import annotations

import os
import signal

ENVIRONMENT_VARIABLE = "LOCKER_FAULT"


def point(name: str) -> None:
    """Die here when the test asked for it."""
    if os.environ.get(ENVIRONMENT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)
