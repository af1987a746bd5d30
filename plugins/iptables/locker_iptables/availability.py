"""Which iptables this host uses, and what rules it already holds.

python-iptables writes only the legacy x_tables rule store. Where
``iptables`` is the nf_tables variant (the default on Debian 10 and later,
Fedora, RHEL 8 and later), rules written through it are invisible to
``iptables`` and ``nft``, and packets pass both rule stores.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from locker.errors import BackendError
from locker.model import Availability

from locker_iptables.kernel import load_iptc

TIMEOUT = 5.0


def _run(argv: list[str]) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def iptables_variant() -> str:
    """``nf_tables``, ``legacy`` or ``unknown``: what ``iptables -V`` says."""
    out = _run(["iptables", "-V"]) or ""
    if "nf_tables" in out:
        return "nf_tables"
    if "legacy" in out:
        return "legacy"
    return "unknown"


def count_legacy_rules() -> int | None:
    """Rules in the legacy store of the current network namespace (reading
    does not create tables)."""
    out = _run(["iptables-legacy-save"])
    if out is None:
        return None
    return sum(1 for line in out.splitlines() if line.startswith("-A "))


def count_nftables_rules() -> int | None:
    """Rules in the nf_tables store (native nft and iptables-nft alike) of
    the current network namespace."""
    out = _run(["nft", "-j", "list", "ruleset"])
    if out is not None:
        try:
            items = json.loads(out).get("nftables", [])
        except ValueError:
            return None
        return sum(1 for item in items if "rule" in item)
    out = _run(["iptables-nft-save"])
    if out is None:
        return None
    return sum(1 for line in out.splitlines() if line.startswith("-A "))


def _count(n: int | None) -> str:
    return "unknown" if n is None else str(n)


def availability() -> Availability:
    """The backend's answer for ``locker backends`` and auto-detection;
    never raises."""
    try:
        load_iptc()
    except BackendError as err:
        return Availability(False, str(err))
    except Exception as err:  # noqa: BLE001 - must never raise
        return Availability(False, f"python-iptables cannot be loaded ({err}).")
    try:
        variant = iptables_variant()
        legacy, nft = count_legacy_rules(), count_nftables_rules()
    except Exception as err:  # noqa: BLE001 - must never raise
        return Availability(False, f"Cannot inspect this host's iptables ({err}).")
    details = {"variant": variant, "legacy_rules": _count(legacy),
               "nftables_rules": _count(nft)}
    present = f"{_count(legacy)} legacy and {_count(nft)} nf_tables rules present"
    if variant == "nf_tables":
        return Availability(
            True,
            f"python-iptables works, but this host's iptables is the nf_tables variant "
            f"and Locker's rules would go to the legacy store ({present}).",
            auto=False,
            warning=("This host's iptables is the nf_tables variant, so Locker's rules "
                     "go to the legacy store where `iptables` and `nft` do not show them "
                     "(see them with `iptables-legacy-save`); prefer `--backend nftables`, "
                     "or switch the host with `update-alternatives --set iptables "
                     "/usr/sbin/iptables-legacy`."),
            details=details)
    if variant == "unknown":
        return Availability(
            True, f"python-iptables works; the `iptables` command is missing, so it is "
                  f"unknown which variant this host uses ({present}).",
            auto=False,
            warning="Install iptables (legacy variant) so that Locker's rules can be "
                    "inspected with `iptables-legacy-save`.",
            details=details)
    return Availability(True, f"python-iptables works and this host uses legacy "
                              f"iptables ({present}).", details=details)
