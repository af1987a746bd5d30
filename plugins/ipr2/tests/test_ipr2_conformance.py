"""The link conformance suite, run against the ipr2 backend."""

from locker.testing.link_suite import LinkBackendTests


class TestIpr2Conformance(LinkBackendTests):
    backend_name = "ipr2"
