"""The rules documented in docs/rules/ are what each firewall backend puts
in the kernel for the example project (regenerated in a network namespace
made for the test)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from locker.testing.netns import missing_requirements

ROOT = Path(__file__).resolve().parents[2]


def genrules():
    spec = importlib.util.spec_from_file_location("genrules", ROOT / "scripts" / "genrules.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.privileged
@pytest.mark.parametrize("backend", ["nftables", "iptables"])
def test_documented_rules_are_what_the_backend_makes(backend: str) -> None:
    reason = missing_requirements(("ip", "nft", "iptables-legacy-save"))
    if reason:
        pytest.skip(reason)
    module = genrules()
    committed = module.path(backend)
    assert committed.is_file(), f"{committed} is missing: run scripts/gen-rules"
    assert module.generate(backend) == committed.read_text(), (
        f"the {backend} backend's rules differ from {committed.relative_to(ROOT)}: "
        f"run scripts/gen-rules (as root) and commit the result")


def test_the_example_project_file_is_valid_and_matches_the_rules(tmp_path: Path) -> None:
    from locker.projectfile import load_project

    module = genrules()
    shipped = ROOT / "docs" / "rules" / "example.yaml"
    assert shipped.read_text() == module.EXAMPLE_YAML, "run scripts/gen-rules"
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "locker.yaml").write_text(module.EXAMPLE_YAML)
    project = load_project(tmp_path / "demo" / "locker.yaml")
    web = project.container("web")
    _, forwards, links = module.example()
    assert sorted((p.host_port, p.container_port, p.protocol) for p in web.ports) == sorted(
        (f.host_port, f.container_port, f.protocol) for f in forwards)
    assert [link.name for link in web.links] == [link.peer for link in links]
