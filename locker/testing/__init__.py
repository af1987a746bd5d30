"""Test kit for Locker and its plugins: in-memory backends, the fresh network
namespace fixture, and the backend conformance suites."""
