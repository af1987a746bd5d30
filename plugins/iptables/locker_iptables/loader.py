"""Importing python-iptables (``iptc``) cheaply.

``import iptc`` (python-iptables 1.0.1) took ~230 ms here, nearly all of it
in two searches it makes before it can load its libraries:

- ``iptc.util`` imports ``distutils.sysconfig`` for ``get_python_lib``, its
  last resort when looking for a library. In a virtualenv with setuptools,
  setuptools' distutils shim imports setuptools and pkg_resources: ~160 ms.
  (Python 3.12 has no distutils at all.)
- It looks for its own C helper ``libxtwrapper`` by bare name first, through
  ``ctypes.util.find_library``, which runs ``ldconfig``, ``gcc`` and ``ld``
  for each of four spellings before python-iptables falls back to
  ``sys.path``: ~60 ms. Its ``IPTABLES_LIBDIR`` variable makes it try a
  directory first.

Both are avoided for the duration of the import only: ~25 ms instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import sysconfig
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from locker.errors import BackendError

from locker_iptables.rules import BASE, FAMILY


def _default_xtables_libdir() -> None:
    """Point python-iptables at the xtables extensions when the environment
    does not: its own search fails on several distributions (and runs
    ``ldconfig -v``)."""
    if os.environ.get("XTABLES_LIBDIR"):
        return
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for candidate in (f"/usr/lib/{multiarch}/xtables", "/usr/lib64/xtables",
                      "/usr/lib/xtables", "/usr/libexec/xtables"):
        if os.path.isfile(os.path.join(candidate, "libxt_comment.so")):
            os.environ["XTABLES_LIBDIR"] = candidate
            return


@contextmanager
def _without_distutils() -> Iterator[None]:
    """A minimal ``distutils.sysconfig`` while iptc imports, unless distutils
    is already loaded; removed afterwards so that nobody else sees it."""
    if "distutils.sysconfig" in sys.modules or "distutils" in sys.modules:
        yield
        return
    package = types.ModuleType("distutils")
    package.__path__ = []
    stand_in = types.ModuleType("distutils.sysconfig")
    # What distutils' get_python_lib() answers for pure modules.
    stand_in.get_python_lib = lambda *_args, **_kwargs: sysconfig.get_paths()["purelib"]
    package.sysconfig = stand_in
    sys.modules["distutils"], sys.modules["distutils.sysconfig"] = package, stand_in
    try:
        yield
    finally:
        for name, module in (("distutils", package), ("distutils.sysconfig", stand_in)):
            if sys.modules.get(name) is module:
                del sys.modules[name]


@contextmanager
def _wrapper_dir_first() -> Iterator[None]:
    """``IPTABLES_LIBDIR`` naming the directory that holds iptc (and its
    ``libxtwrapper``), while iptc imports, when the caller set none."""
    if "IPTABLES_LIBDIR" in os.environ:
        yield
        return
    spec = importlib.util.find_spec("iptc")
    if spec is None or not spec.submodule_search_locations:
        yield
        return
    os.environ["IPTABLES_LIBDIR"] = os.path.dirname(
        os.path.abspath(next(iter(spec.submodule_search_locations))))
    try:
        yield
    finally:
        os.environ.pop("IPTABLES_LIBDIR", None)


def load_iptc() -> Any:
    """Import python-iptables (which probes for libxtables and its
    extensions); raise BackendError when it cannot be loaded."""
    if "iptc" in sys.modules:
        return sys.modules["iptc"]
    _default_xtables_libdir()
    try:
        with _without_distutils(), _wrapper_dir_first():
            import iptc
    except Exception as err:  # noqa: BLE001 - any import failure means "not here"
        raise BackendError(
            f"python-iptables cannot be loaded ({err}); install python3-iptables and "
            "iptables, or set XTABLES_LIBDIR to the directory holding libxt_*.so.") from None
    return iptc


@contextmanager
def only_tables(iptc: Any, names: Sequence[str]) -> Iterator[None]:
    """While the ``with`` block runs, python-iptables looks for chains only
    in the tables ``names`` (those Locker opened: ``filter``, ``nat``, and
    the ip6tables ``filter6``, ``nat6`` of ``locker_iptables.rules``).

    Each ``Target`` it builds or reads asks ``Rule.tables`` (``Rule6.tables``
    in IPv6) whether its name is a chain, and that property opens all five
    tables of its family (``Table.ALL``): ``iptc_init`` of ``raw``,
    ``mangle`` and ``security`` instantiates those tables in the kernel
    (their modules loaded, their empty chains in every packet's path)
    although Locker never uses them."""
    four = [BASE[n] for n in names if FAMILY[n] == 4]
    six = [BASE[n] for n in names if FAMILY[n] == 6]
    saved = [(cls, cls.__dict__["tables"]) for cls in (iptc.ip4tc.Rule, iptc.ip6tc.Rule6)]
    iptc.ip4tc.Rule.tables = property(lambda _rule: [iptc.Table(name) for name in four])
    iptc.ip6tc.Rule6.tables = property(lambda _rule: [iptc.Table6(name) for name in six])
    try:
        yield
    finally:
        for cls, tables in saved:
            cls.tables = tables
