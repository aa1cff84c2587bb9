"""The hub's tests' fixtures (tests/support/hubfixtures.py)."""

from tests.support.hubfixtures import clock, connect, hub, proof_site  # noqa: F401 - fixtures
