"""Money as a person reads it (issue 13, "rough edges"): one formatter per
language — `mecene/amounts.py` for Python, `extension/amounts.js` for
JavaScript (the dashboard runs a generated copy) — that agree to the
character, on integers only; and messages that speak euros, not cents."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from daemon import budget
from daemon.budget import BudgetRules
from mecene import amounts

ROOT = Path(__file__).resolve().parents[2]
CASES = [0, 1, 5, -5, 99, 100, 195, -195, 200, 100000, -100000, 123456789, 9007199254740991]
EXPECTED = {
    0: "0.00 €", 1: "0.01 €", 5: "0.05 €", -5: "-0.05 €", 99: "0.99 €", 100: "1.00 €",
    195: "1.95 €", -195: "-1.95 €", 200: "2.00 €", 100000: "1000.00 €",
    -100000: "-1000.00 €", 123456789: "1234567.89 €", 9007199254740991: "90071992547409.91 €",
}  # fmt: skip


def test_python_writes_amounts_from_integers() -> None:
    assert {c: amounts.euros(c) for c in CASES} == EXPECTED
    for not_cents in (1.5, True, "5", None):
        with pytest.raises(TypeError):
            amounts.euros(not_cents)  # type: ignore[arg-type]
    assert [amounts.parse_euros(t) for t in ("5", "4.50", "4,5 €", "0.01", "1.999", "-1", "")] == [
        500, 450, 450, 1, None, None, None,
    ]  # fmt: skip


@pytest.mark.parametrize("script", ["extension/amounts.js", "daemon/static/amounts.js"])
def test_javascript_writes_the_same_text(script: str) -> None:
    node = shutil.which("node")
    assert node, "node is installed by scripts/test"
    program = (
        f"require({json.dumps(str(ROOT / script))});"
        "const {euros, amount, parseEuros} = globalThis.MeceneAmounts;"
        f"const cases = {json.dumps(CASES)};"
        "process.stdout.write(JSON.stringify({"
        "  euros: cases.map(euros), amount: amount(-5), nonInteger: [euros(1.5), euros(null)],"
        "  parsed: ['5', '4.50', '4,5', '0.01'].map((t) => parseEuros(t, false)),"
        "}));"
    )
    out = json.loads(subprocess.run([node, "-e", program], capture_output=True, check=True).stdout)
    assert [s.replace("\u00a0", " ") for s in out["euros"]] == [EXPECTED[c] for c in CASES]
    assert out["amount"] == "-0.05" and out["nonInteger"] == ["?", "?"]
    assert out["parsed"] == [500, 450, 450, 1]


# Float formatting of money, as it was written before: cents / 100 with toFixed
# or a float format, in every file that shows money.
FLOAT_MONEY = re.compile(r"cents\w*['\"\]]*\)? / 100|toFixed\(2\)|/ 100:[>.0-9]*f|/ 100:\.2f")
SHOWS_MONEY = [
    "extension/popup.js", "extension/options.js", "extension/flattr.js", "extension/gifts.js",
    "daemon/static/app.js", "daemon/cli.py", "daemon/tray.py", "hub/cli.py", "hub/http.py",
]  # fmt: skip


def test_no_file_that_shows_money_formats_it_with_floats() -> None:
    found = {
        name: FLOAT_MONEY.findall((ROOT / name).read_text())
        for name in SHOWS_MONEY
        if (ROOT / name).exists()
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_messages_a_person_reads_speak_euros() -> None:
    with pytest.raises(ValueError, match=r"at least 2\.00 € a month"):
        BudgetRules(budget_cents=150)
    with pytest.raises(ValueError) as low:
        budget.BudgetRules(budget_cents=500, min_click_cents=0)
    assert "cents" not in str(low.value)
