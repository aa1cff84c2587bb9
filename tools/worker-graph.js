#!/usr/bin/env node
/* The service worker's parts, checked (issue 24; background.js lists them).
 *
 * Every part but the router is one IIFE that defines one namespace object,
 * `globalThis.MeceneX = …`, and names what it needs on one line,
 * `const { MeceneA, MeceneB } = globalThis;`. This reads each part with
 * espree and eslint-scope (the parser and scope analysis ESLint uses) and
 * reports, as JSON on stdout (exit 1 if any):
 *   - a statement outside the IIFE (a bare global of the worker's);
 *   - a global the part uses without naming it (another part's, by name);
 *   - a dependency on a part loaded after it, and any cycle between parts.
 *
 * Usage: node tools/worker-graph.js [EXTENSION_DIR]
 */
"use strict";
const fs = require("fs");
const path = require("path");

const modules = path.join(__dirname, "webext", "node_modules");
const espree = require(path.join(modules, "espree"));
const eslintScope = require(path.join(modules, "eslint-scope"));

// What the browser gives every part (not another part's doing).
const BROWSER = new Set([
  "chrome", "browser", "globalThis", "self", "crypto", "navigator", "fetch", "importScripts",
  "URL", "URLSearchParams", "setTimeout", "clearTimeout", "Promise", "Date", "Object", "Array",
  "Number", "String", "Boolean", "Set", "Map", "WeakMap", "JSON", "Math", "RegExp", "Symbol",
  "Error", "TypeError", "console", "encodeURIComponent", "decodeURIComponent", "structuredClone",
  "TextEncoder", "TextDecoder", "Uint8Array", "btoa", "performance", "undefined", "NaN", "Infinity",
]);
const NAMESPACE = /^Mecene[A-Z]\w*$/;

function parse(file) {
  const source = fs.readFileSync(file, "utf8");
  const ast = espree.parse(source, { ecmaVersion: "latest", sourceType: "script", range: true, loc: true });
  const scopes = eslintScope.analyze(ast, { ecmaVersion: 2022, sourceType: "script" });
  return { ast, scopes };
}

function isIife(node) {
  return node.type === "ExpressionStatement" && node.expression.type === "CallExpression"
    && ["ArrowFunctionExpression", "FunctionExpression"].includes(node.expression.callee.type)
    && node.expression.arguments.length === 0;
}

function isDirective(node) {
  return node.type === "ExpressionStatement" && typeof node.directive === "string";
}

/** What a part defines and names, and what is wrong with its shape. */
function readPart(dir, name) {
  const { ast, scopes } = parse(path.join(dir, name));
  const problems = [];
  const body = ast.body.filter((n) => !isDirective(n));
  const router = name === "background.js";
  if (!router && (body.length !== 1 || !isIife(body[0]))) {
    problems.push(`${name}: everything must be inside one (() => { … })(); at the top level`);
  }
  const defines = [];
  const deps = [];
  const walk = (node) => {
    if (!node || typeof node.type !== "string") return;
    if (node.type === "AssignmentExpression" && node.left.type === "MemberExpression"
        && node.left.object.type === "Identifier" && node.left.object.name === "globalThis"
        && !node.left.computed) {
      defines.push(node.left.property.name);
    }
    if (node.type === "VariableDeclarator" && node.init && node.init.type === "Identifier"
        && node.init.name === "globalThis" && node.id.type === "ObjectPattern") {
      for (const p of node.id.properties) if (p.key && p.key.type === "Identifier") deps.push(p.key.name);
    }
    for (const key of Object.keys(node)) {
      if (key === "parent") continue;
      const child = node[key];
      if (Array.isArray(child)) child.forEach(walk);
      else if (child && typeof child === "object") walk(child);
    }
  };
  walk(ast);
  if (!router && (defines.length !== 1 || !NAMESPACE.test(defines[0]))) {
    problems.push(`${name}: defines ${JSON.stringify(defines)}; a part defines one globalThis.MeceneX`);
  }
  // Names used and never declared in the part: the browser's, or not allowed.
  const used = new Set(scopes.globalScope.through.map((ref) => ref.identifier.name));
  const direct = [];
  for (const id of used) {
    if (BROWSER.has(id)) continue;
    if (router && NAMESPACE.test(id)) {
      direct.push(id); // the router may name every part: it is the root
      continue;
    }
    problems.push(`${name}: uses ${id} without naming it in const { … } = globalThis`);
  }
  return { file: name, defines: defines[0] || null, deps: router ? direct : deps, problems };
}

function check(dir) {
  const manifest = JSON.parse(fs.readFileSync(path.join(dir, "manifest.json"), "utf8"));
  const order = manifest.background.scripts;
  const parts = order.map((name) => readPart(dir, name));
  const problems = parts.flatMap((p) => p.problems);
  const definedBy = new Map(parts.filter((p) => p.defines).map((p) => [p.defines, p]));
  // A part may use only what a part loaded before it defines.
  parts.forEach((part, i) => {
    for (const dep of part.deps) {
      const owner = definedBy.get(dep);
      if (!owner) problems.push(`${part.file}: ${dep} is defined by no part`);
      else if (order.indexOf(owner.file) >= i) {
        problems.push(`${part.file}: needs ${dep}, from ${owner.file}, which is loaded after it`);
      }
    }
  });
  // And no cycle at all, whatever the order (named in full, to be fixed).
  const graph = new Map(parts.map((p) => [p.file, p.deps.map((d) => definedBy.get(d)).filter(Boolean).map((o) => o.file)]));
  const state = new Map();
  const stack = [];
  const visit = (file) => {
    state.set(file, "open");
    stack.push(file);
    for (const next of graph.get(file) || []) {
      if (state.get(next) === "open") {
        problems.push(`cycle: ${[...stack.slice(stack.indexOf(next)), next].join(" → ")}`);
      } else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of order) if (!state.has(file)) visit(file);
  return {
    ok: problems.length === 0,
    parts: parts.map(({ file, defines, deps }) => ({ file, defines, deps })),
    problems,
  };
}

const dir = path.resolve(process.argv[2] || path.join(__dirname, "..", "extension"));
const report = check(dir);
process.stdout.write(JSON.stringify(report, null, 2) + "\n");
process.exit(report.ok ? 0 : 1);
