"""The one table of platforms (mecene/data/platforms.toml, issue 29): the
extension's copy is generated from it and checked, and the extension and the
daemon read the same profile addresses as the same keys."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hub import proofs
from mecene import keys, platforms

ROOT = Path(__file__).resolve().parents[2]
CASES = json.loads((ROOT / "tests" / "fixtures" / "platform-urls.json").read_text())["cases"]


def js_keys(urls: list[str]) -> list[str | None]:
    """What content.js's platformKey says of each address, in Node."""
    node = shutil.which("node")
    assert node, "node is not installed: run scripts/test"
    loads = "".join(
        f"require({json.dumps(str(ROOT / 'extension' / name))});"
        for name in ("github-reserved.js", "platforms.js", "content.js")
    )
    script = f"{loads}console.log(JSON.stringify({json.dumps(urls)}.map(globalThis.platformKey)));"
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout))


def py_key(url: str) -> str | None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return platforms.profile_key(host, parts.path) or platforms.site_key(host, parts.path)


def test_the_extension_and_the_daemon_read_the_same_profile_addresses_alike() -> None:
    urls = [url for url, _ in CASES]
    expected = [key for _, key in CASES]
    assert js_keys(urls) == expected
    assert [py_key(url) for url in urls] == expected
    # What a person types is read by the same rules: a route is not a profile.
    for url, key in CASES:
        if key is not None:
            assert keys.typed_key(url) == key
    with pytest.raises(ValueError, match="is a page of Liberapay, not a profile"):
        keys.typed_key("liberapay.com/about")


def test_every_platform_in_the_table_is_a_key_kind_and_a_readable_form() -> None:
    table = platforms.platforms()
    assert {"liberapay", "opencollective", "kofi", "patreon", "buymeacoffee"} <= set(table)
    for scheme, platform in table.items():
        assert scheme in keys.KEY_SCHEMES
        assert keys.creator_key(f"{scheme}:someone") == f"{scheme}:someone"
        assert keys.readable_key(f"{scheme}:someone") == f"{platform.readable}someone"
        assert platform.readable in keys.KEY_SPELLINGS
        assert platform.sources, f"{scheme} names no source for its markup"
        for source in platform.sources:
            assert (ROOT / "tests" / "fixtures" / "real" / source).is_file(), source
    # The hub proves what the table gives a proof page, and says where.
    assert set(proofs.PROFILE_PAGES) == {s for s, p in table.items() if p.proof_page}
    assert "buymeacoffee" not in proofs.PROFILE_PAGES  # no real profile page read yet
    assert proofs.where_to_prove("liberapay:alice") == table["liberapay"].owner_field


def _copy_of_the_generator(tmp: Path) -> Path:
    """scripts/make-webdata with the files it reads and writes, in `tmp`."""
    (tmp / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "make-webdata", tmp / "scripts")
    (tmp / "tools").symlink_to(ROOT / "tools")  # the pinned npm packages
    shutil.copytree(ROOT / "extension", tmp / "extension")
    shutil.copytree(ROOT / "daemon" / "static", tmp / "daemon" / "static")
    shutil.copytree(ROOT / "mecene" / "data", tmp / "mecene" / "data")
    return tmp / "scripts" / "make-webdata"


def test_the_check_fails_on_a_hand_edit_and_on_a_table_not_generated(tmp_path: Path) -> None:
    script = _copy_of_the_generator(tmp_path)

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
        )

    assert check().returncode == 0, check().stderr
    generated = tmp_path / "extension" / "platforms.js"
    text = generated.read_text()
    generated.write_text(text.replace('"funding":true', '"funding":false', 1))
    edited = check()
    assert edited.returncode == 1 and "extension/platforms.js" in edited.stderr
    generated.write_text(text)
    table = tmp_path / "mecene" / "data" / "platforms.toml"
    table.write_text(table.read_text().replace('name = "Ko-fi"', 'name = "Kofi"'))
    stale = check()
    assert stale.returncode == 1 and "extension/platforms.js" in stale.stderr
    assert "daemon/static/platforms.js" in stale.stderr
