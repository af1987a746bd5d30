"""Other tools' port forwards, read from fixed command output."""

from __future__ import annotations

import json
from pathlib import Path

from locker import foreign
from locker.foreign import ForeignDnat

CHAINS = {"nftables": [
    {"metainfo": {}},
    {"chain": {"family": "ip", "table": "nat", "name": "PREROUTING", "type": "nat",
               "hook": "prerouting"}},
    {"chain": {"family": "ip", "table": "locker", "name": "PREROUTING", "type": "nat",
               "hook": "prerouting"}},
    {"chain": {"family": "inet", "table": "filter", "name": "forward", "type": "filter",
               "hook": "forward"}},
]}
NAT_RULES = {"nftables": [
    {"rule": {"family": "ip", "table": "nat", "chain": "PREROUTING", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}},
                   "right": 8080}},
        {"dnat": {"addr": "172.17.0.2", "port": 80}}]}},
    {"rule": {"family": "ip", "table": "nat", "chain": "PREROUTING", "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": "udp", "field": "dport"}},
                   "right": {"set": [53, 5353]}}},
        {"counter": None}]}},
]}


def fake_nft(argv):
    if argv[-1] == "chains":
        return json.dumps(CHAINS)
    assert argv[-3:] == ["ip", "nat", "PREROUTING"], argv  # Locker's own table is not read
    return json.dumps(NAT_RULES)


def test_nft_dnats_of_other_tables_only() -> None:
    assert foreign.nft_dnats(fake_nft) == [
        ForeignDnat(8080, "tcp", "nftables table ip nat, chain PREROUTING")]


def test_legacy_dnats_when_the_nat_table_is_loaded(tmp_path: Path) -> None:
    names = tmp_path / "ip_tables_names"
    names.write_text("filter\nnat\n")
    save = ("*nat\n-A DOCKER ! -i docker0 -p tcp -m tcp --dport 8080 -j DNAT "
            "--to-destination 172.17.0.2:80\n"
            '-A LOCKER_PREROUTING -p tcp -m tcp --dport 9090 -m comment --comment '
            '"locker:demo:web:dnat" -j DNAT --to-destination 10.1.1.2:80\nCOMMIT\n')
    found = foreign.legacy_dnats(lambda argv: save, names)
    assert found == [ForeignDnat(8080, "tcp", "iptables-legacy nat chain DOCKER")]
    names.write_text("filter\n")
    assert foreign.legacy_dnats(lambda argv: save, names) == []


def test_clashes_name_the_port_and_the_other_tool() -> None:
    dnats = [ForeignDnat(8080, "tcp", "nftables table ip nat, chain PREROUTING")]
    [warning] = foreign.clashes([(8080, "tcp"), (8080, "udp"), (9090, "tcp")], dnats)
    assert warning.startswith("Host port 8080/tcp is also forwarded by a rule of another tool "
                              "(nftables table ip nat, chain PREROUTING)")


def test_a_missing_or_hanging_tool_is_passed_over() -> None:
    assert foreign.run_briefly(["no-such-tool-anywhere"]) is None
    assert foreign.nft_dnats(lambda argv: None) == []
