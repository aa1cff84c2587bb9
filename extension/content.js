/* Mécène content script: find the creators of the page (DESIGN.md, "Creator keys").
 *
 * `globalThis.detectCreators(document)` is pure: no extension API, no change
 * to the DOM, the same answer twice. It returns [{key, scope, source, label?, url?}]
 * (`url`: an element-scope creator's own part of the page, when it has an address):
 * page-scope entries by priority (flattr > wm > payment and funding links >
 * fediverse > platform keys, ties in document order), then the one `domain:`
 * entry, then element-scope entries (commenters, authors of sibling
 * articles) in document order. result[0] is the page's primary creator.
 *
 * Everything here reads hostile pages: bad metadata is dropped, never reported.
 * The file also runs as a plain script in a test page: every extension API
 * use is guarded.
 */
(() => {
  "use strict";

  const MAX_VALUE = 512;
  const ID_RE = /^[A-Za-z0-9._~-]{1,200}$/;
  const FEDI_RE = /^@?([A-Za-z0-9_.-]{1,100})@([A-Za-z0-9.-]{1,253})$/;
  const BAD_SCHEMES = /^\s*(javascript|data|vbscript|file):/i;
  const HOST_RE = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
  const PRIORITY = {
    flattr: 0, wm: 1, payment: 2, liberapay: 2, opencollective: 2, kofi: 2, patreon: 2,
    fediverse: 3, youtube: 4, github: 4,
  };
  const FUNDING_HOSTS = {
    "liberapay.com": "liberapay", "opencollective.com": "opencollective",
    "ko-fi.com": "kofi", "patreon.com": "patreon", "github.com": "github",
  };
  // github.com/<first segment> that are not users or organisations.
  const GITHUB_RESERVED = new Set([
    "about", "account", "apps", "blog", "codespaces", "collections", "contact", "customer-stories",
    "dashboard", "enterprise", "events", "explore", "features", "github", "issues", "join",
    "login", "logout", "marketplace", "new", "notifications", "organizations", "orgs", "pricing",
    "pulls", "readme", "search", "security", "sessions", "settings", "site", "sponsors", "stars",
    "team", "topics", "trending", "watching", "password_reset", "nonprofit", "education",
  ]);
  // User content: comments, replies, responses, forum posts (WordPress's
  // comment list, schema.org Comment, ARIA's comment role, Discourse's
  // .topic-post, phpBB's .postbody, Disqus-style .reply and .response).
  const COMMENT_SELECTOR = [
    "[itemtype*='Comment']", "[itemprop='comment']", "[role='comment']", ".comment",
    ".comments", "#comments", ".comment-list", ".commentlist", "[id^='comment-']",
    ".reply", ".replies", "#replies", ".response", ".responses", "#responses",
    ".topic-post", ".forum-post", ".postbody", ".postprofile", "[itemtype*='DiscussionForumPosting'] [itemprop='comment']",
  ].join(",");
  const MAX_ENTRIES = 64;
  const MAX_LABEL = 80;
  const YOUTUBE_HOSTS = new Set(["youtube.com", "www.youtube.com", "m.youtube.com"]);

  // -- values -------------------------------------------------------------------

  function cleanId(value) {
    if (typeof value !== "string") return null;
    const v = value.trim();
    return v && v.length <= MAX_VALUE && ID_RE.test(v) ? v : null;
  }

  /** An absolute http(s) URL without fragment or credentials, or null. */
  function cleanUrl(raw, base, httpsOnly) {
    if (typeof raw !== "string") return null;
    const v = raw.trim();
    if (!v || v.length > MAX_VALUE || BAD_SCHEMES.test(v) || /[\s<>"'`]/.test(v)) return null;
    let url;
    try {
      url = new URL(v, base);
    } catch (e) {
      return null;
    }
    if (url.protocol !== "https:" && (httpsOnly || url.protocol !== "http:")) return null;
    // The host as the daemon takes it (daemon/keys.py): ASCII labels (an
    // internationalised name arrives as punycode) or an IP literal. A name
    // the URL parser kept percent-encoded would be refused there.
    if (!HOST_RE.test(url.hostname) && !/^\[[0-9a-f:.]+\]$/.test(url.hostname)) return null;
    url.hash = "";
    url.username = "";
    url.password = "";
    return url;
  }

  function fediverseKey(value) {
    if (typeof value !== "string" || value.length > MAX_VALUE) return null;
    const m = FEDI_RE.exec(value.trim());
    return m ? `fediverse:@${m[1]}@${m[2].toLowerCase()}` : null;
  }

  /** The creator key a funding or platform URL names, or null. */
  function platformKey(url) {
    const host = url.hostname.toLowerCase().replace(/^www\./, "");
    const parts = url.pathname.split("/").filter(Boolean);
    if (host === "flattr.com") {
      const id = url.pathname.startsWith("/submit/auto") ? url.searchParams.get("user_id") : null;
      const clean = cleanId(id);
      return clean ? `flattr:${clean}` : null;
    }
    const scheme = FUNDING_HOSTS[host];
    if (!scheme || parts.length === 0) return null;
    let name = parts[0];
    if (scheme === "github") {
      if (name === "sponsors") name = parts[1];
      else if (GITHUB_RESERVED.has(name.toLowerCase())) return null;
    }
    if (scheme === "patreon" && name === "c") name = parts[1];
    const clean = cleanId(name);
    return clean ? `${scheme}:${clean}` : null;
  }

  // -- the registrable domain (Public Suffix List, psl.js) -------------------------

  /** Whether the Public Suffix List has `rule`; psl.js groups rules by last label. */
  function hasRule(rule) {
    const list = globalThis.MECENE_PSL;
    if (!list || typeof list !== "object") return false;
    const tld = rule.slice(rule.lastIndexOf(".") + 1);
    const group = Object.prototype.hasOwnProperty.call(list, tld) ? list[tld] : null;
    return typeof group === "string" && group.includes(`\n${rule}\n`);
  }

  /** `alice.github.io` for alice.github.io; `example.co.uk` for www.example.co.uk. */
  function registrableDomain(hostname) {
    const host = String(hostname || "").toLowerCase().replace(/\.$/, "");
    if (!host) return null;
    if (/^[0-9.]+$/.test(host) || host.includes(":")) return host; // an IP address
    const labels = host.split(".");
    let suffixLength = 1; // the default rule "*"
    for (let i = 0; i < labels.length; i++) {
      const candidate = labels.slice(i).join(".");
      if (hasRule(`!${candidate}`)) {
        suffixLength = labels.length - i - 1;
        break;
      }
      const wildcard = i + 1 < labels.length ? `*.${labels.slice(i + 1).join(".")}` : null;
      if (hasRule(candidate) || (wildcard && hasRule(wildcard))) {
        suffixLength = labels.length - i;
        break;
      }
    }
    if (labels.length <= suffixLength) return host;
    return labels.slice(labels.length - suffixLength - 1).join(".");
  }

  // -- scope -------------------------------------------------------------------------

  function scopeOf(el) {
    if (el.closest(COMMENT_SELECTOR)) return "element";
    const article = el.closest("article");
    // An article inside another is a comment, in HTML's own model.
    if (article && article.parentElement && article.parentElement.closest("article")) {
      return "element";
    }
    if (article && article.parentElement) {
      const siblings = Array.from(article.parentElement.children).filter(
        (c) => c.tagName === "ARTICLE");
      if (siblings.length > 1) return "element";
    }
    return "page";
  }

  /** The element's comment or sibling article, or null when it is page scope. */
  function partOf(el) {
    const comment = el.closest(COMMENT_SELECTOR);
    if (comment) return comment;
    const article = el.closest("article");
    return article && scopeOf(article) === "element" ? article : null;
  }

  /** The address of an element-scope creator's own part of the page: the
   * nearest anchor (an id) from the marker up to its comment or article, else
   * the article's own link (rel=bookmark, or its headline's); same origin only,
   * so a page cannot point a flattr at another site's thing. */
  function partUrl(el, doc) {
    const part = partOf(el);
    if (!part) return undefined;
    let page;
    try {
      page = new URL(doc.URL);
    } catch (e) {
      return undefined;
    }
    page.hash = "";
    for (let node = el; node; node = node.parentElement) {
      const id = node.getAttribute("id");
      if (id && id.length <= 200 && /^[A-Za-z0-9_:.-]+$/.test(id)) return `${page.href}#${id}`;
      if (node === part) break;
    }
    const link = part.tagName === "ARTICLE"
      ? part.querySelector("a[rel~='bookmark'][href], h1 a[href], h2 a[href], h3 a[href]") : null;
    const url = link ? cleanUrl(link.getAttribute("href"), doc.baseURI, false) : null;
    if (url && url.origin === page.origin && url.href !== page.href) return url.href;
    return undefined;
  }

  function labelOf(el) {
    const raw = el.getAttribute("title") || el.textContent || "";
    const text = raw.slice(0, 4 * MAX_LABEL).replace(/\s+/g, " ").trim();
    return text ? text.slice(0, MAX_LABEL) : undefined;
  }

  function relTokens(el) {
    return (el.getAttribute("rel") || "").slice(0, MAX_VALUE).toLowerCase()
      .split(/\s+/).filter(Boolean);
  }

  // -- detection ------------------------------------------------------------------------

  /* `source` is one of these short words, never the page's own text:
   *   meta, link         a <meta> or <link> (in the head, or in the body outside user content)
   *   anchor             an <a rel="payment|me|author">
   *   button             an <a class="FlattrButton">
   *   data               an element with data-flattr-uid
   *   page-url           the page's own address (github.com/LOGIN)
   *   site               the registrable domain, always last of the page's entries */

  function detectCreators(doc) {
    const found = []; // {key, scope, source, label, url, tier, order}
    let order = 0;
    const base = doc.baseURI;
    const head = doc.head;
    // tier 0: the head (what the site declares); 1: page-scope markers in the body.
    const add = (key, scope, source, label, el) => {
      if (!key || key.length > MAX_VALUE) return;
      const inHead = !el || (head !== null && head.contains(el));
      const url = scope === "element" && el ? partUrl(el, doc) : undefined;
      found.push({ key, scope, source, label, url, tier: inHead ? 0 : 1, order: order++ });
    };
    let pageHost = "";
    try {
      pageHost = new URL(doc.URL).hostname.toLowerCase();
    } catch (e) { /* about:blank and the like: no domain entry */ }

    for (const el of doc.querySelectorAll(
      "meta[name], meta[itemprop], link[rel], a[rel], a.FlattrButton, [data-flattr-uid]")) {
      const tag = el.tagName;
      // Metadata in the head is the page's; the same tags in the body are
      // the page's only outside user content (a comment cannot declare them).
      const scope = head !== null && head.contains(el) ? "page" : scopeOf(el);
      if (tag === "META") {
        const name = (el.getAttribute("name") || "").toLowerCase();
        const content = el.getAttribute("content");
        if (name === "flattr:id") {
          const id = cleanId(content);
          if (id) add(`flattr:${id}`, scope, "meta", undefined, el);
        } else if (name === "monetization") {
          const v = typeof content === "string" ? content.trim() : "";
          const url = v.startsWith("$") ? cleanUrl(`https://${v.slice(1)}`, base, true) : null;
          if (url) add(`wm:${url.href}`, scope, "meta", undefined, el);
        } else if (name === "fediverse:creator") {
          const key = fediverseKey(content);
          if (key) add(key, scope, "meta", undefined, el);
        } else if ((el.getAttribute("itemprop") || "") === "channelId" && YOUTUBE_HOSTS.has(pageHost)) {
          const id = cleanId(content);
          if (id && id.startsWith("UC")) add(`youtube:${id}`, scope, "meta", undefined, el);
        }
        continue;
      }
      const rels = relTokens(el);
      if (tag === "LINK") {
        const href = el.getAttribute("href");
        if (rels.includes("monetization")) {
          const url = cleanUrl(href, base, true);
          if (url) add(`wm:${url.href}`, scope, "link", undefined, el);
          continue;
        }
        if (rels.includes("canonical") && YOUTUBE_HOSTS.has(pageHost)) {
          const url = cleanUrl(href, base, false);
          const m = url && /^\/channel\/(UC[A-Za-z0-9_-]+)/.exec(url.pathname);
          if (m) add(`youtube:${m[1]}`, scope, "link", undefined, el);
          continue;
        }
        const url = cleanUrl(href, base, false);
        if (!url) continue;
        const platform = platformKey(url);
        // A <link> in the head to a funding platform counts whatever its rel.
        if (platform) add(platform, scope, "link", undefined, el);
        else if (rels.includes("payment")) add(`payment:${url.href}`, scope, "link", undefined, el);
        continue;
      }
      if (el.hasAttribute("data-flattr-uid")) {
        const id = cleanId(el.getAttribute("data-flattr-uid"));
        if (id) add(`flattr:${id}`, scope, "data", labelOf(el), el);
      }
      if (tag !== "A") continue;
      if (el.classList.contains("FlattrButton")) {
        const m = /(?:^|;)\s*uid:([^;]*)/.exec((el.getAttribute("rel") || "").slice(0, MAX_VALUE));
        const id = m ? cleanId(m[1]) : null;
        if (id) add(`flattr:${id}`, scope, "button", labelOf(el), el);
        continue;
      }
      // A plain link to a profile is not a creator: only rel payment, me or author counts.
      if (!rels.some((r) => r === "payment" || r === "me" || r === "author")) continue;
      const url = cleanUrl(el.getAttribute("href"), base, false);
      if (!url) continue;
      const platform = platformKey(url);
      if (platform) add(platform, scope, "anchor", labelOf(el), el);
      else if (rels.includes("payment")) add(`payment:${url.href}`, scope, "anchor", labelOf(el), el);
    }

    // The page itself: github.com/LOGIN and its repositories name their owner.
    if (pageHost === "github.com" || pageHost === "www.github.com") {
      const url = new URL(doc.URL);
      const key = platformKey(url);
      if (key && key.startsWith("github:") && !url.pathname.startsWith("/sponsors/")) {
        add(key, "page", "page-url");
      }
    }

    const rank = (e) => PRIORITY[e.key.slice(0, e.key.indexOf(":"))] ?? 9;
    const page = found.filter((e) => e.scope === "page")
      .sort((a, b) => a.tier - b.tier || rank(a) - rank(b) || a.order - b.order);
    const element = found.filter((e) => e.scope === "element").sort((a, b) => a.order - b.order);
    const domain = registrableDomain(pageHost);
    const ordered = [...page];
    if (domain) ordered.push({ key: `domain:${domain}`, scope: "page", source: "site" });
    ordered.push(...element);

    const seen = new Set();
    const result = [];
    for (const e of ordered) {
      if (seen.has(e.key)) continue;
      seen.add(e.key);
      const out = { key: e.key, scope: e.scope, source: e.source };
      if (e.label) out.label = e.label;
      if (e.url) out.url = e.url;
      result.push(out);
      if (result.length === MAX_ENTRIES) break;
    }
    return result;
  }

  // -- in the extension: detect after load, and again when the page changes ----------

  const runtime = globalThis.chrome && globalThis.chrome.runtime;
  const injectedBefore = typeof globalThis.meceneReport === "function";
  globalThis.detectCreators = detectCreators;
  globalThis.registrableDomain = registrableDomain;
  if (!runtime || !runtime.id) return; // a plain script in a test page
  if (injectedBefore) { // the service worker injects again after each load, or asks now
    globalThis.meceneReport(true);
    return;
  }

  let lastUrl = null;
  let lastKeys = null;
  /** Send the creators to the worker; `force` sends even when nothing changed
   * (the worker asked, or forgot this page when the tab moved on). */
  const report = (force) => {
    const creators = detectCreators(document);
    const keys = `${document.title}\n${creators.map((c) => c.key).join("\n")}`;
    if (!force && keys === lastKeys && location.href === lastUrl) return;
    lastKeys = keys;
    lastUrl = location.href;
    try {
      const title = String(document.title || "").replace(/\s+/g, " ").trim().slice(0, 200);
      runtime.sendMessage({ action: "creators", args: { creators, url: location.href, title } })
        .catch(() => {});
    } catch (e) { /* the extension was reloaded: this script is orphaned */ }
  };
  // Off the critical path: when the browser is idle after load.
  const later = (fn) => (globalThis.requestIdleCallback
    ? requestIdleCallback(fn, { timeout: 2000 }) : setTimeout(fn, 0));
  let scheduled = false;
  let forced = false;
  const schedule = (force) => {
    forced = forced || force === true;
    if (scheduled) return;
    scheduled = true;
    later(() => {
      scheduled = false;
      const f = forced;
      forced = false;
      report(f);
    });
  };
  globalThis.meceneReport = (force) => {
    // The worker asks while the page is still loading (a toolbar click on a
    // page whose load never ends): answer at once, not after a load that may never come.
    if (document.readyState === "complete") schedule(force);
    else report(true);
  };
  // Injected after load by the worker, or before it when the worker asked on demand.
  globalThis.meceneReport(true);
  // Head changes (single-page apps retitle and re-meta) and history navigation.
  if (document.head) {
    new MutationObserver(() => schedule(false)).observe(document.head,
      { childList: true, subtree: true, attributes: true, characterData: true });
  }
  addEventListener("popstate", () => schedule(false));
  if (globalThis.navigation && navigation.addEventListener) {
    navigation.addEventListener("navigatesuccess", () => schedule(false));
  }
  // Back/Forward: a page restored from the back/forward cache is the tab's
  // document again, and the worker forgot it when the tab moved on.
  addEventListener("pageshow", (event) => {
    if (event.persisted) schedule(true);
  });
})();
