"""The shape the code keeps (DESIGN.md, "Rooms by lifecycle";
docs/ARCHITECTURE.md): checked on the source, so a change that breaks it
fails here, not in a review."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = [p for pkg in ("mecene", "daemon", "hub") for p in sorted((ROOT / pkg).rglob("*.py"))]
MAX_CLASS_LINES = 400
# What a statement to SQLite looks like in the daemon's Python.
SQL = re.compile(
    r"\b(SELECT|INSERT INTO|INSERT OR|UPDATE \w+ SET|DELETE FROM)\b|db\.(execute|query|table)\("
)
# The daemon's SQL lives in the store (schema, meta) and in each room's sql.py.
SQL_HOMES = {"daemon/store.py"} | {
    str(p.relative_to(ROOT)) for p in (ROOT / "daemon").glob("*/sql.py")
}
LIFECYCLES = ("months", "flattrs", "gifts", "unlinkable", "browsers", "creators")


def _classes(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    return [
        (n.name, (n.end_lineno or n.lineno) - n.lineno + 1)
        for n in ast.walk(tree)
        if isinstance(n, ast.ClassDef)
    ]


def test_no_class_is_over_400_lines() -> None:
    big = [
        (str(p.relative_to(ROOT)), name, size)
        for p in PRODUCT
        for name, size in _classes(p)
        if size > MAX_CLASS_LINES
    ]
    assert big == []


def test_the_daemon_s_sql_lives_in_its_rooms_sql_modules_and_the_store() -> None:
    found = {
        str(p.relative_to(ROOT))
        for p in (ROOT / "daemon").rglob("*.py")
        if SQL.search(p.read_text())
    }
    assert found - SQL_HOMES == set()


@pytest.mark.parametrize("room", LIFECYCLES)
def test_each_daemon_lifecycle_has_its_room(room: str) -> None:
    """A pure part (policy, or pairing for browsers), its SQL, and its driver."""
    here = ROOT / "daemon" / room
    pure = "pairing.py" if room == "browsers" else "policy.py"
    assert (here / pure).is_file() and (here / "__init__.py").read_text().startswith('"""')
    if room != "creators":  # the joined list is in memory, own keys in the wallet
        assert (here / "sql.py").is_file()
    assert (here / "room.py").is_file() or (here / "link.py").is_file()


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """The same checks on a file written to break them."""
    bad = tmp_path / "bad.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_CLASS_LINES))
    bad.write_text(f'class Big:\n{body}\n\n\ndef f(db):\n    db.execute("SELECT 1")\n')
    assert _classes(bad) == [("Big", MAX_CLASS_LINES + 1)]
    assert SQL.search(bad.read_text())


def test_tests_have_one_hub_harness_and_one_daemon_harness() -> None:
    """Only tests/support/hubs.py builds a hub, and only tests/support/daemons.py
    a daemon's app or process: every test and bench starts them through these."""
    support = ROOT / "tests" / "support"
    builds_hub = re.compile(r"\bHub\(|mecene-hub|\"-m\", \"hub\"")
    builds_daemon = re.compile(r"\bcreate_app\(config|\"-m\", \"daemon\"")
    hubs = {p.name for p in support.glob("*.py") if builds_hub.search(p.read_text())}
    daemons = {p.name for p in support.glob("*.py") if builds_daemon.search(p.read_text())}
    assert (hubs, daemons) == ({"hubs.py"}, {"daemons.py"})
