"""The core's version: the one place it is written (the build reads it from
here, ``locker.__version__`` re-exports it)."""

__version__ = "0.1.0"
