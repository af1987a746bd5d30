"""Locker's iptables firewall backend (python-iptables, legacy x_tables).

Importing this package is cheap and never fails: python-iptables is
imported only when a hook runs.
"""

from locker_iptables.backend import IptablesBackend

__all__ = ["IptablesBackend"]
