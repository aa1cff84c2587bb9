"""The daemon's tests against a hub share its `world` (tests/support/daemons.py)."""

from tests.support.daemons import world  # noqa: F401 - the fixture
