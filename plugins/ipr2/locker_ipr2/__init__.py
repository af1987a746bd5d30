"""Locker's ``ipr2`` link backend: bridges and addresses by running
iproute2's ``ip`` command with JSON output, for hosts without pyroute2."""

from locker_ipr2.backend import Ipr2Backend

__all__ = ["Ipr2Backend"]
