"""What of other tools drops the forwarded traffic Locker's rules accept.

Shared by the firewall backends' ``find_blockers`` hooks; pure functions
over what a backend read, plus the cheap host checks for firewalld and ufw.
Nothing here changes anything.

An ``accept`` ends only the base chain it is in: a ``drop`` in another
table's base chain at the same hook still drops (nft(8), "OVERALL
EVALUATION OF THE RULESET"), and so does the FORWARD policy of the legacy
iptables store when its ``filter`` table is loaded. A forward-hook chain
*blocks* a bridge when it would drop the bridge's traffic before accepting
it: its policy is drop, or it holds an unconditional ``drop``/``reject``
rule, and not every direction was accepted before that point.

The rules recognised as "accepts the bridge" (in the chain itself; jumps
into other chains are not followed):

- nftables: an ``accept`` whose only match is ``iifname`` (traffic from the
  bridge: outbound) or ``oifname`` (traffic to the bridge: DNATed
  connections and replies) equal to the bridge's name or a set holding it
  (``iifname "locker_demo" accept``, ``oifname { "locker_demo", "x" }
  accept``); counters and logging do not matter.
- iptables: ``-A FORWARD -i BRIDGE -j ACCEPT`` and ``-A FORWARD -o BRIDGE -j
  ACCEPT``, optionally with a comment.

Both directions are needed: each ``Blocker.fix`` inserts exactly the missing
ones at the top of the chain, so that once it ran the chain is no longer
reported.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from locker.model import Blocker, Bridge

#: Seconds any probe of another tool may take.
TIMEOUT = 2.0

#: Directions of a bridge's traffic: from the bridge (``iifname``/``-i``)
#: and to it (``oifname``/``-o``).
FROM, TO = "from", "to"
DIRECTIONS = (FROM, TO)


# ------------------------------------------------------- chain evaluation


@dataclass(frozen=True)
class ChainRule:
    """One rule of a forward-hook chain, as far as blocking goes: the
    interface names it accepts traffic from or to (as a whole rule), or
    whether it drops everything."""

    accepts_from: frozenset[str] = frozenset()
    accepts_to: frozenset[str] = frozenset()
    drops: bool = False


@dataclass(frozen=True)
class ForwardChain:
    """A base chain at the forward hook (or the legacy FORWARD chain)."""

    location: str            # "nftables chain inet filter forward", for people
    policy_drops: bool
    rules: tuple[ChainRule, ...]
    address: tuple[str, ...] = ()   # nftables: (family, table, chain)


def missing_directions(chain: ForwardChain, bridge: str) -> tuple[str, ...]:
    """The directions of ``bridge``'s traffic that ``chain`` drops (empty:
    it lets the bridge through, or drops nothing)."""
    accepted: set[str] = set()
    for rule in chain.rules:
        if bridge in rule.accepts_from:
            accepted.add(FROM)
        if bridge in rule.accepts_to:
            accepted.add(TO)
        if rule.drops:
            break
    else:
        if not chain.policy_drops:
            return ()
    return tuple(d for d in DIRECTIONS if d not in accepted)


def _reason(chain: ForwardChain) -> str:
    return ("an unconditional drop rule" if any(r.drops for r in chain.rules)
            else "policy drop")


def chain_blockers(chains: Iterable[ForwardChain], bridges: Sequence[Bridge],
                   fix: Callable[[ForwardChain, str, tuple[str, ...]], str]) -> list[Blocker]:
    """One Blocker per chain and bridge that the chain blocks; ``fix``
    writes the command that accepts the missing directions there."""
    found = []
    for chain in chains:
        for bridge in bridges:
            missing = missing_directions(chain, bridge.name)
            if missing:
                found.append(Blocker(
                    f"{chain.location} drops forwarded traffic {' and '.join(missing)} "
                    f"{bridge.name} ({_reason(chain)})",
                    fix(chain, bridge.name, missing)))
    return found


# ------------------------------------------------------------- nftables


_NEUTRAL = {"counter", "log", "limit", "comment"}  # statements that change no verdict
_IFNAME_KEYS = {"iifname": "accepts_from", "oifname": "accepts_to"}


def _names(right: object) -> frozenset[str] | None:
    if isinstance(right, str):
        return frozenset([right])
    if isinstance(right, dict) and isinstance(right.get("set"), list) \
            and all(isinstance(v, str) for v in right["set"]):
        return frozenset(right["set"])
    return None


def nft_rule(expr: Sequence[dict]) -> ChainRule:
    """Read one nft JSON rule (its ``expr`` list)."""
    items = [item for item in expr
             if not (isinstance(item, dict) and len(item) == 1 and set(item) <= _NEUTRAL)]
    if len(items) == 1 and isinstance(items[0], dict) and set(items[0]) & {"drop", "reject"}:
        return ChainRule(drops=True)
    if len(items) != 2 or items[1] != {"accept": None} or "match" not in items[0]:
        return ChainRule()
    match = items[0]["match"]
    key = (match.get("left") or {}).get("meta", {}).get("key") \
        if isinstance(match.get("left"), dict) else None
    names = _names(match.get("right"))
    if key not in _IFNAME_KEYS or names is None or match.get("op") not in ("==", "in"):
        return ChainRule()
    return ChainRule(**{_IFNAME_KEYS[key]: names})


def nft_chain(family: str, table: str, chain: dict,
              rules: Iterable[Sequence[dict]]) -> ForwardChain:
    """A ForwardChain from nft JSON: the ``chain`` object and the ``expr``
    of each of its rules, in order."""
    return ForwardChain(f"nftables chain {family} {table} {chain['name']}",
                        chain.get("policy") == "drop", tuple(nft_rule(e) for e in rules),
                        (family, table, chain["name"]))


#: Tables whose forward chains iptables-nft manages: their fix goes through
#: iptables-nft, so that `iptables -S` keeps reading them.
IPTABLES_NFT_TABLES = {("ip", "filter")}

_NFT_MATCH = {FROM: "iifname", TO: "oifname"}
_IPT_FLAG = {FROM: "-i", TO: "-o"}
_IPT_FIELD = {"-i": "accepts_from", "-o": "accepts_to"}


def nft_fix(family: str, table: str, chain: str, bridge: str,
            missing: Sequence[str]) -> str:
    """The command inserting the missing accepts first in an nft chain."""
    if (family, table) in IPTABLES_NFT_TABLES:
        return iptables_fix("iptables-nft", chain, bridge, missing)
    return " && ".join(
        "nft " + shlex.quote(f'insert rule {family} {table} {chain} '
                             f'{_NFT_MATCH[d]} "{bridge}" accept')
        for d in missing)


def nft_chain_fix(chain: ForwardChain, bridge: str, missing: Sequence[str]) -> str:
    """``nft_fix`` for a chain made by ``nft_chain``."""
    return nft_fix(*chain.address, bridge, missing)


def iptables_fix(command: str, chain: str, bridge: str, missing: Sequence[str]) -> str:
    return " && ".join(f"{command} -I {chain} {_IPT_FLAG[d]} {bridge} -j ACCEPT"
                       for d in missing)


# ------------------------------------------------------------- iptables


def iptables_chain(location: str, chain: str, listing: str) -> ForwardChain:
    """A ForwardChain from ``iptables -S CHAIN`` output."""
    policy_drops, rules = False, []
    for line in listing.splitlines():
        words = shlex.split(line)
        if words[:2] == ["-P", chain]:
            policy_drops = words[2:3] == ["DROP"]
        elif words[:2] == ["-A", chain]:
            rules.append(iptables_rule(words[2:]))
    return ForwardChain(location, policy_drops, tuple(rules))


def _without_comment(words: Sequence[str]) -> list[str]:
    out, i = [], 0
    while i < len(words):
        if list(words[i:i + 3]) == ["-m", "comment", "--comment"]:
            i += 4
            continue
        out.append(words[i])
        i += 1
    return out


def iptables_rule(words: Sequence[str]) -> ChainRule:
    """Read the words of one ``-A CHAIN ...`` line after the chain name."""
    words = _without_comment(words)
    if words == ["-j", "DROP"] or words[:2] == ["-j", "REJECT"]:
        return ChainRule(drops=True)
    if len(words) == 4 and words[2:] == ["-j", "ACCEPT"] and words[0] in _IPT_FIELD:
        return ChainRule(**{_IPT_FIELD[words[0]]: frozenset([words[1]])})
    return ChainRule()


# ------------------------------------------------------- host firewalls


@dataclass(frozen=True)
class HostFirewalls:
    """firewalld and ufw as seen on this host: their blockers, and which
    chains they manage (a backend skips those in its own checks, since the
    right fix goes through the firewall manager, not into its rules)."""

    blockers: tuple[Blocker, ...] = ()
    managed_tables: frozenset[tuple[str, str]] = frozenset()   # nft (family, table)
    manages_legacy_forward: bool = False

    def manages(self, family: str, table: str) -> bool:
        return (family, table) in self.managed_tables


Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str] | None"]


def run_briefly(argv: Sequence[str]) -> subprocess.CompletedProcess[str] | None:
    """Run a probe with a short timeout; None when it is missing, hangs or
    fails to start."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return None


def _pid_alive(root: Path, pid_file: Path, name: str) -> bool:
    try:
        pid = int(pid_file.read_text().split()[0])
        cmdline = (root / "proc" / str(pid) / "cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return False
    return any(os.path.basename(part.decode(errors="replace")) == name
               for part in cmdline.split(b"\0")[:2])


def firewalld_running(root: Path = Path("/"), run: Runner = run_briefly) -> bool:
    """firewalld runs: its pid file names a live firewalld process, or,
    where only its runtime directory is there, ``firewall-cmd --state``
    says so."""
    for pid_file in (root / "run/firewalld.pid", root / "var/run/firewalld.pid"):
        if pid_file.exists():
            return _pid_alive(root, pid_file, "firewalld")
    if not (root / "run/firewalld").is_dir():
        return False
    done = run(["firewall-cmd", "--state"])
    return done is not None and done.returncode == 0 and done.stdout.strip() == "running"


def firewalld_blockers(bridges: Sequence[Bridge], run: Runner = run_briefly) -> list[Blocker]:
    """Bridges not in firewalld's ``trusted`` zone: firewalld then rejects
    their forwarded traffic (its zones do not forward by default). The fix
    puts the bridge in ``trusted``, as Podman and libvirt do, now and
    across firewalld reloads."""
    found = []
    for bridge in bridges:
        done = run(["firewall-cmd", f"--get-zone-of-interface={bridge.name}"])
        zone = done.stdout.strip() if done is not None and done.returncode == 0 else ""
        if zone == "trusted":
            continue
        if done is None:
            where = "firewall-cmd did not answer which zone it is in"
        else:
            where = f"its zone {zone}, not trusted" if zone else "in no zone"
        # --change-interface also adds an interface that is in no zone, but
        # only --add-interface does so on every firewalld version.
        verb = "change" if zone or done is None else "add"
        fix = " && ".join(f"firewall-cmd {permanent}--zone=trusted "
                          f"--{verb}-interface={bridge.name}"
                          for permanent in ("", "--permanent "))
        found.append(Blocker(f"firewalld rejects forwarded traffic of {bridge.name} "
                             f"({where})", fix))
    return found


def _conf(path: Path) -> dict[str, str]:
    values = {}
    try:
        text = path.read_text()
    except OSError:
        return values
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("\"'")
    return values


def ufw_active(root: Path = Path("/")) -> bool:
    """ufw is enabled (``ENABLED=yes`` in ``/etc/ufw/ufw.conf``): it loads its
    rules at boot, so its FORWARD policy applies."""
    return _conf(root / "etc/ufw/ufw.conf").get("ENABLED", "").lower() == "yes"


def ufw_blockers(bridges: Sequence[Bridge], root: Path = Path("/")) -> list[Blocker]:
    """Bridges whose traffic an active ufw with forward policy DROP or
    REJECT drops: both ``ufw route allow in on BRIDGE`` and ``ufw route allow
    out on BRIDGE`` are needed (read from ``/etc/ufw/user.rules``)."""
    policy = _conf(root / "etc/default/ufw").get("DEFAULT_FORWARD_POLICY", "DROP").upper()
    if policy == "ACCEPT":
        return []
    try:
        rules = (root / "etc/ufw/user.rules").read_text().splitlines()
    except OSError:
        rules = []
    found = []
    for bridge in bridges:
        missing = [word for flag, word in (("-i", "in"), ("-o", "out"))
                   if f"-A ufw-user-forward {flag} {bridge.name} -j ACCEPT" not in rules]
        if missing:
            found.append(Blocker(
                f"ufw drops forwarded traffic of {bridge.name} (forward policy {policy})",
                " && ".join(f"ufw route allow {word} on {bridge.name}" for word in missing)))
    return found


def host_firewalls(bridges: Sequence[Bridge], root: Path = Path("/"),
                   run: Runner = run_briefly) -> HostFirewalls:
    """firewalld's and ufw's blockers for these bridges. Cheap: a few file
    reads, and ``firewall-cmd`` only where firewalld runs."""
    blockers: list[Blocker] = []
    managed: set[tuple[str, str]] = set()
    legacy = False
    if bridges and firewalld_running(root, run):
        blockers += firewalld_blockers(bridges, run)
        managed |= {("inet", "firewalld"), ("ip", "firewalld"), ("ip6", "firewalld")}
    if bridges and ufw_active(root):
        blockers += ufw_blockers(bridges, root)
        managed.add(("ip", "filter"))   # ufw's chains through iptables-nft
        legacy = True                   # or through iptables-legacy
    return HostFirewalls(tuple(blockers), frozenset(managed), legacy)
