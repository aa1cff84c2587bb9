#!/usr/bin/env node
/* The browsers' packages of the extension, built by web-ext (issue 28).
 *
 * extension/ is the source, loaded as it is by no browser: its manifest
 * holds both browsers' keys. For each browser this writes an unpacked copy
 * with that browser's own manifest, then web-ext builds its package:
 *   build/chromium/ and dist/mecene-chromium-VERSION.zip — no
 *     background.scripts (Chromium runs the service worker and shows a
 *     "Warnings" button for the key it ignores), no browser_specific_settings;
 *   build/firefox/ and dist/mecene-firefox-VERSION.xpi — no
 *     background.service_worker (Firefox runs background.scripts) and no
 *     `key` (Chromium's fixed extension id; Firefox's is in gecko.id).
 *
 * Usage: node tools/package.js [--out DIR]   (DIR holds build/ and dist/;
 * the repository's root by default). Prints what it wrote, one per line.
 */
"use strict";
const fs = require("fs");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
const SOURCE = path.join(ROOT, "extension");
const MODULES = path.join(__dirname, "webext", "node_modules");

// Files of extension/ that are the project's, not the extension's.
const NOT_SHIPPED = new Set(["PERMISSIONS.md"]);

function manifestFor(browser, manifest) {
  const m = structuredClone(manifest);
  if (browser === "chromium") {
    delete m.background.scripts;
    delete m.browser_specific_settings;
    delete m.action.default_area; // Firefox's toolbar placement
  } else {
    delete m.background.service_worker;
    delete m.key;
  }
  return m;
}

function copyTree(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    if (NOT_SHIPPED.has(entry.name) || entry.name.startsWith(".")) continue;
    const src = path.join(from, entry.name);
    const dst = path.join(to, entry.name);
    if (entry.isDirectory()) copyTree(src, dst);
    else fs.copyFileSync(src, dst);
  }
}

async function main() {
  const args = process.argv.slice(2);
  const at = args.indexOf("--out");
  const out = at >= 0 ? path.resolve(args[at + 1]) : ROOT;
  const manifest = JSON.parse(fs.readFileSync(path.join(SOURCE, "manifest.json"), "utf8"));
  const webExt = (await import(path.join(MODULES, "web-ext", "index.js"))).default;
  const dist = path.join(out, "dist");
  for (const [browser, ext] of [["chromium", "zip"], ["firefox", "xpi"]]) {
    const dir = path.join(out, "build", browser);
    fs.rmSync(dir, { recursive: true, force: true });
    copyTree(SOURCE, dir);
    const own = manifestFor(browser, manifest);
    fs.writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(own, null, 2) + "\n");
    const filename = `mecene-${browser}-${manifest.version}.${ext}`;
    await webExt.cmd.build(
      { sourceDir: dir, artifactsDir: dist, filename, overwriteDest: true },
      { shouldExitProgram: false, showReadyMessage: false },
    );
    console.log(dir);
    console.log(path.join(dist, filename));
  }
}

main().catch((e) => {
  console.error(`package: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
