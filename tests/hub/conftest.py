"""The hub's tests' fixtures (tests/support/hubs.py)."""

from tests.support.hubs import clock, connect, hub, proof_site  # noqa: F401 - fixtures
