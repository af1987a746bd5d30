"""The firewall conformance suite, run against the nftables backend."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import pytest

from locker.testing.firewall_suite import FirewallBackendTests
from locker.model import Forward
from locker.testing.netns import NetNS

from locker_nftables import NftablesBackend
from locker_nftables.rules import BASE_CHAINS

pytestmark = pytest.mark.skipif(
    __import__("shutil").which("nft") is None, reason="needs the nft command")

#: Another tool's tables at the hooks Locker uses, some with counters off
#: so that the dump cannot change by itself.
FOREIGN = """
table inet filter {
    chain forward {
        type filter hook forward priority filter; policy accept;
        ct state invalid drop comment "admin"
        iifname "eth9" oifname "eth8" accept
    }
}
table ip nat {
    chain PREROUTING {
        type nat hook prerouting priority dstnat; policy accept;
        tcp dport 2222 dnat to 192.0.2.5:22 comment "other tool"
    }
    chain POSTROUTING {
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr 172.31.0.0/16 masquerade
    }
}
"""


#: Another tool's forward chain that drops what it does not accept.
FORWARD_DROP = """
table inet hostfw {
    chain forward {
        type filter hook forward priority filter + 10; policy drop;
        ct state established,related accept
    }
}
"""


def nft(netns: NetNS, *argv: str, **kwargs) -> str:
    return netns.run(["nft", *argv], **kwargs).stdout


@pytest.mark.privileged
class TestNftablesConformance(FirewallBackendTests):
    def make_backend(self) -> object:
        return NftablesBackend()

    def add_foreign_rules(self, netns: NetNS) -> None:
        netns.run(["nft", "-f", "-"], input=FOREIGN)

    def foreign_state(self, netns: NetNS) -> str:
        tables = [line.split()[1:] for line in nft(netns, "list", "tables").splitlines()]
        return "".join(nft(netns, "list", "table", family, name)
                       for family, name in sorted(tables) if (family, name) != ("ip", "locker"))

    def locker_state(self, netns: NetNS) -> str:
        """``nft list table ip locker``, then each DNAT's two elements (address
        map, port map) joined as ``KEY -> ADDRESS:PORT``, as the suite wants
        to see the destination."""
        text = netns.run(["nft", "list", "table", "ip", "locker"], check=False).stdout
        if not text:
            return text
        stores = {}
        for item in self._listing(netns):
            body = item.get("map")
            if body is not None:
                stores[body["name"]] = {json.dumps(e[0]["elem"]["val"]): e[1]
                                        for e in body.get("elem", [])}
        joined = [f"dnat {name[:-len('_addr')]} {key} -> {address}:{ports[key]}"
                  for name, addresses in sorted(stores.items()) if name.endswith("_addr")
                  for key, address in addresses.items()
                  for ports in [stores.get(name[:-len("_addr")] + "_port", {})] if key in ports]
        return text + "".join(line + "\n" for line in joined)

    def jump_counts(self, netns: NetNS) -> Mapping[str, int]:
        counts = {base.target: 0 for base in BASE_CHAINS}
        for line in self.locker_state(netns).splitlines():
            for target in counts:
                if f"jump {target} " in line and 'comment "LOCKER"' in line:
                    counts[target] += 1
        return counts

    # --------------------------------------- breaking Locker's rules (nft)

    def _listing(self, netns: NetNS) -> list[dict]:
        return json.loads(nft(netns, "-j", "-a", "list", "table", "ip", "locker"))["nftables"]

    def _rules(self, netns: NetNS) -> list[dict]:
        return [item["rule"] for item in self._listing(netns) if "rule" in item]

    def _pieces(self, netns: NetNS) -> list[tuple[str, list[list[str]]]]:
        """(comment, nft delete commands) of each tagged rule, then of each
        element (a DNAT's address element with its port element), read
        with ``nft -j``."""
        pieces = []
        for rule in self._rules(netns):
            if rule.get("comment", "").startswith("locker:"):
                pieces.append((rule["comment"], [["delete", "rule", "ip", "locker",
                                                  rule["chain"], "handle", str(rule["handle"])]]))
        for item in self._listing(netns):
            body = item.get("map") or item.get("set")
            if body is None or body["name"].endswith("_port"):
                continue
            for elem in body.get("elem", []):
                key = elem[0] if isinstance(elem, list) else elem
                comment = key["elem"].get("comment") if "elem" in key else None
                if not comment:
                    continue
                val = key["elem"]["val"]
                text = " . ".join(str(v) for v in val["concat"])
                names = [body["name"]]
                if body["name"].endswith("_addr"):
                    names.append(body["name"][:-len("_addr")] + "_port")
                pieces.append((comment, [["delete", "element", "ip", "locker", name,
                                          "{ " + text + " }"] for name in names]))
        return pieces

    def tag_counts(self, netns: NetNS) -> Counter:
        return Counter(c for c, _ in self._pieces(netns) if not c.endswith(":dispatch"))

    def delete_locker_rule(self, netns: NetNS, comment: str, nth: int = 0) -> None:
        _, commands = [p for p in self._pieces(netns) if p[0] == comment][nth]
        for command in commands:
            nft(netns, *command)

    def replace_with_dnat(self, netns: NetNS, comment: str, forward: Forward,
                          nth: int = 0) -> None:
        """Replace the DNAT elements by those of ``forward`` under the same tag."""
        self.delete_locker_rule(netns, comment, nth)
        host = f"{forward.host_ip} . " if forward.host_ip else ""
        prefix = f"{forward.project}_dnat{'ip' if forward.host_ip else ''}"
        key = f"{host}{forward.protocol} . {forward.host_port} comment \"{comment}\""
        nft(netns, "add", "element", "ip", "locker", f"{prefix}_addr",
            f"{{ {key} : {forward.container_ip} }}")
        nft(netns, "add", "element", "ip", "locker", f"{prefix}_port",
            f"{{ {key} : {forward.container_port} }}")

    def add_tagged_rule(self, netns: NetNS, comment: str, chain: str) -> None:
        nft(netns, "add", "rule", "ip", "locker", chain, f'tcp dport 99 accept comment "{comment}"')

    def _jump(self, netns: NetNS, chain: str) -> dict:
        return next(r for r in self._rules(netns) if r.get("comment") == "LOCKER"
                    and r["expr"][-1].get("jump", {}).get("target") == chain)

    def delete_jump(self, netns: NetNS, chain: str) -> None:
        rule = self._jump(netns, chain)
        nft(netns, "delete", "rule", "ip", "locker", rule["chain"], "handle", str(rule["handle"]))

    def add_jump(self, netns: NetNS, chain: str) -> None:
        base = next(b for b in BASE_CHAINS if b.target == chain)
        local = "fib daddr type local " if base.only_local else ""
        nft(netns, "add", "rule", "ip", "locker", base.name,
            f'{local}jump {chain} comment "LOCKER"')

    def delete_chain(self, netns: NetNS, chain: str) -> None:
        self.delete_jump(netns, chain)
        nft(netns, "flush", "chain", "ip", "locker", chain)
        nft(netns, "delete", "chain", "ip", "locker", chain)

    def add_forward_drop(self, netns: NetNS) -> None:
        netns.run(["nft", "-f", "-"], input=FORWARD_DROP)

    @contextmanager
    def failing_batch(self, backend: NftablesBackend) -> Iterator[None]:
        """Append a rule for a chain that does not exist to the next batch:
        the kernel accepts everything before it, then the batch fails."""
        commit = backend._commit
        broken = {"add": {"rule": {"family": "ip", "table": "locker",
                                   "chain": "NO_SUCH_CHAIN", "expr": [{"accept": None}],
                                   "comment": "locker:alpha:broken"}}}

        def failing(commands, what):
            assert len(commands) > 1, "the batch must do something before failing"
            commit(commands + [broken], what)

        backend._commit = failing
        try:
            yield
        finally:
            backend._commit = commit
