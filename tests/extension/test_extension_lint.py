"""The extension's manifest passes Firefox's `web-ext lint` (installed by scripts/test)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.browser import DETECTOR_FILES, EXTENSION, ROOT, built, package_file

WEB_EXT = ROOT / "tools" / "webext" / "node_modules" / ".bin" / "web-ext"


def test_web_ext_lint_finds_nothing_in_the_firefox_package() -> None:
    assert WEB_EXT.exists(), "web-ext is not installed: run scripts/test"
    out = subprocess.run(
        [str(WEB_EXT), "lint", "--source-dir", str(built("firefox")), "--output", "json"],
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = json.loads(out.stdout)
    problems = [(m["code"], m["message"]) for kind in ("errors", "warnings") for m in report[kind]]
    # Its own manifest: not even the "service worker ignored" warning of old.
    assert problems == []


def test_each_browser_s_package_has_only_its_own_manifest_keys() -> None:
    """scripts/package: Chromium's manifest has no background.scripts (which
    chrome://extensions flagged on install) nor Firefox's settings; Firefox's
    has no service worker nor Chromium's `key`. Both have the same files."""
    source = json.loads((EXTENSION / "manifest.json").read_text())
    chromium = json.loads((built("chromium") / "manifest.json").read_text())
    firefox = json.loads((built("firefox") / "manifest.json").read_text())
    assert chromium["background"] == {"service_worker": "background.js"}
    assert "browser_specific_settings" not in chromium and "default_area" not in chromium["action"]
    assert chromium["key"] == source["key"]  # the fixed id native messaging allows
    assert firefox["background"] == {"scripts": source["background"]["scripts"]}
    assert "key" not in firefox
    assert firefox["browser_specific_settings"] == source["browser_specific_settings"]
    for manifest in (chromium, firefox):
        rest = {k: v for k, v in manifest.items() if k not in ("background", "key", "action")}
        assert rest.items() <= source.items()
    files = {p.relative_to(EXTENSION) for p in EXTENSION.rglob("*") if p.is_file()}
    files -= {Path("PERMISSIONS.md")}
    for browser in ("chromium", "firefox"):
        root = built(browser)
        assert {p.relative_to(root) for p in root.rglob("*") if p.is_file()} == files
    with zipfile.ZipFile(package_file("firefox")) as xpi:
        assert {Path(n) for n in xpi.namelist() if not n.endswith("/")} == files
    assert package_file("chromium").suffix == ".zip"


def test_manifest_is_mv3_and_names_only_files_that_exist() -> None:
    manifest = json.loads((EXTENSION / "manifest.json").read_text())
    assert manifest["manifest_version"] == 3
    scripts = manifest["background"]["scripts"]
    for name in [manifest["background"]["service_worker"], *scripts]:
        assert (EXTENSION / name).is_file(), name
    # Firefox loads the worker's parts from the manifest, Chromium from
    # importScripts in background.js: the same files, in the same order.
    router = (EXTENSION / "background.js").read_text()
    imported = re.findall(r'"([\w-]+\.js)"', router[router.index("importScripts(") :])
    assert [*imported[: len(scripts) - 1], "background.js"] == scripts
    # The detector is injected after load (tabs.js, injection.js), never declared:
    # a declared content script runs before the load event and slows every page.
    assert "content_scripts" not in manifest
    background = (EXTENSION / "tabs.js").read_text()
    # The generated lists first, then the detector; the tests load the same files.
    listed = json.dumps(list(DETECTOR_FILES), separators=(", ", ": "))
    assert f"DETECTOR_FILES = {listed};" in background
    for name in (*DETECTOR_FILES, "popup.html", "popup.js"):
        assert (EXTENSION / name).is_file(), name


def test_a_page_gets_the_suffix_rules_its_detector_can_use() -> None:
    """The worker gives a page the Public Suffix List's rules of its own
    top-level domain and of ALWAYS_TLDS only (tabs.js). That gives the whole
    list's answers as long as every platform content.js knows by its
    registrable domain (NOT_FEDIVERSE) is under one of ALWAYS_TLDS."""
    content = (EXTENSION / "content.js").read_text()
    tabs = (EXTENSION / "tabs.js").read_text()
    named = re.search(r"const NOT_FEDIVERSE = new Set\((\[[^\]]*\])\);", content)
    always = re.search(r"const ALWAYS_TLDS = (\[[^\]]*\]);", tabs)
    assert named and always
    tlds = {d.rsplit(".", 1)[-1] for d in json.loads(named.group(1))}
    assert tlds <= set(json.loads(always.group(1))), tlds
    assert "psl.js" not in DETECTOR_FILES  # 180 KB in every page: no longer


def test_generated_lists_match_their_maintained_sources() -> None:
    """github-reserved.js, tracking-params.js and the daemon's copy are what
    scripts/make-webdata writes from the packages pinned in
    tools/webext/package-lock.json: generated, never edited by hand."""
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "make-webdata"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    for name in ("github-reserved.js", "tracking-params.js"):
        assert (EXTENSION / name).read_text().startswith("// Generated by scripts/make-webdata")


GRAPH = ROOT / "tools" / "worker-graph.js"


def _graph(extension: Path) -> tuple[int, dict]:
    node = shutil.which("node")
    assert node, "node is not installed: run scripts/test"
    out = subprocess.run(
        [node, str(GRAPH), str(extension)], capture_output=True, text=True, timeout=60
    )
    return out.returncode, json.loads(out.stdout)


def test_the_worker_s_parts_are_explicit_and_form_no_cycle() -> None:
    """Each part of the service worker is one namespace with its dependencies
    named, uses nothing it did not name, and needs only parts loaded before
    it (tools/worker-graph.js, with ESLint's own parser and scope analysis)."""
    code, report = _graph(EXTENSION)
    assert (code, report["problems"]) == (0, [])
    parts = {p["file"]: p for p in report["parts"]}
    # The two cycles of old are gone: the outbox and the injection need no flattr.
    assert "MeceneFlattr" not in parts["outbox.js"]["deps"]
    assert "MeceneInjection" not in parts["flattr.js"]["deps"]
    assert parts["tabs.js"]["defines"] == "MeceneTabs"


@pytest.mark.parametrize(
    ("part", "change", "problem"),
    [
        # A new cycle: the outbox reaching back for the flattrs that use it.
        (
            "outbox.js",
            lambda s: s.replace(
                "const { MeceneStorage, MeceneDaemon, MeceneTabs } = globalThis;",
                "const { MeceneStorage, MeceneDaemon, MeceneTabs, MeceneFlattr } = globalThis;"
                " const again = () => MeceneFlattr;",
            ),
            "cycle: outbox.js → flattr.js → outbox.js",
        ),
        # Another part's function called by its bare name, as the files did.
        (
            "flattr.js",
            lambda s: s.replace("MeceneOutbox.sendFlattr(tabId, body, token);", "sendFlattr();", 1),
            "flattr.js: uses sendFlattr without naming it",
        ),
        # A bare global of the worker's, outside the part's one namespace.
        ("tabs.js", lambda s: s + "\nfunction stray() {}\n", "tabs.js: everything must be inside"),
    ],
)
def test_the_worker_graph_check_fails_on_a_cycle_or_a_bare_global(
    tmp_path: Path, part: str, change: object, problem: str
) -> None:
    copy = tmp_path / "extension"
    shutil.copytree(EXTENSION, copy)
    target = copy / part
    changed = change(target.read_text())  # type: ignore[operator]
    assert changed != target.read_text()
    target.write_text(changed)
    code, report = _graph(copy)
    assert code == 1 and any(p.startswith(problem) for p in report["problems"]), report["problems"]
