"""Sphinx configuration of Locker's documentation (Debian: python3-sphinx).
Built by scripts/build-docs with warnings as errors."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from locker._version import __version__  # noqa: E402

project = "Locker"
author = "The Locker authors"
copyright = "2026, The Locker authors"
version = release = __version__
extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
# The man page is generated from the parser (man/locker.1), not from here.
man_pages = []
nitpicky = False
