"""Processes Locker runs for a project (the DNS forwarder)."""
