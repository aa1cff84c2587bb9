"""The extension's manifest passes Firefox's `web-ext lint` (installed by scripts/test)."""

from __future__ import annotations

import json
import subprocess

from .browser import EXTENSION, ROOT

WEB_EXT = ROOT / "tools" / "webext" / "node_modules" / ".bin" / "web-ext"


def test_web_ext_lint_finds_nothing() -> None:
    assert WEB_EXT.exists(), "web-ext is not installed: run scripts/test"
    out = subprocess.run(
        [str(WEB_EXT), "lint", "--source-dir", str(EXTENSION), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = json.loads(out.stdout)
    problems = [(m["code"], m["message"]) for kind in ("errors", "warnings") for m in report[kind]]
    assert report["summary"]["errors"] == 0, problems
    # One manifest for both browsers: Chromium runs background.service_worker,
    # Firefox runs background.scripts and says it ignores the other key.
    expected = {"BACKGROUND_SERVICE_WORKER_IGNORED"}
    assert [code for code, _ in problems if code not in expected] == [], problems


def test_manifest_is_mv3_and_names_only_files_that_exist() -> None:
    manifest = json.loads((EXTENSION / "manifest.json").read_text())
    assert manifest["manifest_version"] == 3
    for name in [manifest["background"]["service_worker"], *manifest["background"]["scripts"]]:
        assert (EXTENSION / name).is_file(), name
    # The detector is injected after load (background.js), never declared: a
    # declared content script runs before the load event and slows every page.
    assert "content_scripts" not in manifest
    background = (EXTENSION / "background.js").read_text()
    assert 'DETECTOR_FILES = ["psl.js", "content.js"]' in background  # psl.js first
    for name in ("psl.js", "content.js", "popup.html", "popup.js"):
        assert (EXTENSION / name).is_file(), name
