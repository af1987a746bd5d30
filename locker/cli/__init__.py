"""The ``locker`` command: parse, call one operation, render, map errors to
exit codes. It holds no logic that a test would want to reach."""
