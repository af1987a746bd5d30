"""Locker's nftables firewall backend (entry point ``nftables`` in group
``locker.firewall``). Importing this package does not import the nftables
binding; the backend imports it on first use."""

from locker_nftables.backend import NftablesBackend

__all__ = ["NftablesBackend"]
