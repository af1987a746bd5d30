"""An example firewall backend for Locker, driving the ``nft`` command."""

from locker_nftcli.backend import NftCliBackend

__all__ = ["NftCliBackend"]
