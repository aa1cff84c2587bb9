"""The protocol package (`mecene/`): what both sides speak, pure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mecene.encoding import b64u, canonical, unb64u

ROOT = Path(__file__).resolve().parent.parent


def test_canonical_json_is_rfc_8785_for_the_protocol_s_values() -> None:
    doc = {"v": 1, "b": [True, None, 0, -7], "a": 'é\n\u2028\x1f"\\', "c": {"z": "", "y": 10**15}}
    # Keys sorted, no white space, UTF-8, JCS's escapes (RFC 8785, section 3.2.2.2).
    assert (
        canonical(doc)
        == (
            '{"a":"é\\n\u2028\\u001f\\"\\\\","b":[true,null,0,-7],"c":{"y":1000000000000000,"z":""},'
            '"v":1}'
        ).encode()
    )
    for bad in ({"x": 1.5}, {"é": 1}, [0.1]):
        with pytest.raises(ValueError):
            canonical(bad)


@given(st.binary(max_size=96))
def test_base64url_round_trips_without_padding(raw: bytes) -> None:
    text = b64u(raw)
    assert "=" not in text and unb64u(text) == raw


def test_the_import_contract_holds() -> None:
    """`lint-imports` (pyproject.toml): the daemon and the hub never import
    each other but for the embedded hub; `mecene` imports neither, and no I/O."""
    lint = Path(sys.executable).parent / "lint-imports"
    out = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:]
    assert "Contracts: 3 kept, 0 broken." in out.stdout
