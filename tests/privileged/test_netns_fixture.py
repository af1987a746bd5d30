"""The ``netns`` fixture keeps a test and all its threads out of the
machine's own network namespace: run on small test files of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from locker.testing.netns import missing_requirements

pytestmark = pytest.mark.privileged

if missing_requirements():
    pytest.skip(missing_requirements(), allow_module_level=True)


def run_pytest(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    test_file = tmp_path / "test_it.py"
    test_file.write_text(text)
    loaded = any(ep.value == "locker.testing.pytest_plugin"
                 for ep in entry_points(group="pytest11"))
    plugin = [] if loaded else ["-p", "locker.testing.pytest_plugin"]
    environment = {k: v for k, v in os.environ.items() if k != "LOCKER_TESTS_NO_SKIP"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", *plugin, str(test_file)],
                          capture_output=True, text=True, cwd=tmp_path, env=environment)


def test_a_failure_inside_the_tests_own_process_is_reported(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "def test_it(netns):\n    assert 1 == 2, 'seen'\n")
    assert done.returncode == 1
    assert "in the test's own process" in done.stdout and "seen" in done.stdout


def test_a_skip_inside_is_a_skip(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, "import pytest\ndef test_it(netns):\n    pytest.skip('nope')\n")
    assert done.returncode == 0 and "1 skipped" in done.stdout


def test_a_thread_started_before_the_namespace_fails_the_test(tmp_path: Path) -> None:
    done = run_pytest(tmp_path, (
        "import threading, time\n"
        "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "def test_it(netns):\n    pass\n"))
    assert done.returncode == 1
    assert "exist before the test enters its network namespace" in done.stdout
