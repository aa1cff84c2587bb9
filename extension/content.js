/* Mécène content script: find the creators of the page (DESIGN.md, "Creator keys").
 *
 * `globalThis.detectCreators(document)` is pure: no extension API, no change
 * to the DOM, the same answer twice. It returns [{key, scope, source, label?, url?}]
 * (`url`: an element-scope creator's own part of the page, when it has an address):
 * page-scope entries by priority (flattr > wm > payment and funding links >
 * fediverse > platform keys, ties in document order), then the one `domain:`
 * entry, then element-scope entries (commenters, authors of sibling
 * articles) in document order. result[0] is the page's primary creator.
 * `globalThis.thingUrl(document)` is the URL a flattr of the page is for
 * (DESIGN.md, "A thing's URL").
 *
 * It reads four generated lists, loaded before it: psl.js (the Public Suffix
 * List), github-reserved.js, tracking-params.js and platforms.js (the table
 * of platforms) (scripts/make-webdata).
 *
 * Everything here reads hostile pages: bad metadata is dropped, never reported.
 * The file also runs as a plain script in a test page: every extension API
 * use is guarded.
 */
(() => {
  "use strict";

  const MAX_VALUE = 512;
  // A flattr link carries the thing's title and description: its length limit
  // is on the id (MAX_VALUE), not on the whole address.
  const MAX_URL = 4096;
  const ID_RE = /^[A-Za-z0-9._~-]{1,200}$/;
  const FEDI_RE = /^@?([A-Za-z0-9_.-]{1,100})@([A-Za-z0-9.-]{1,253})$/;
  const BAD_SCHEMES = /^\s*(javascript|data|vbscript|file):/i;
  const HOST_RE = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
  // flattr > wm > payment and funding platforms > fediverse > other platform keys.
  const PRIORITY = { flattr: 0, wm: 1, payment: 2, fediverse: 3, site: 4 };
  // GitHub's own rule for a login: letters, digits, single inner hyphens, 39 at most.
  const GITHUB_LOGIN_RE = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;
  /* Hosts whose /@NAME pages are not fediverse accounts (video, blogging and
   * short-video platforms that borrowed the shape). */
  const NOT_FEDIVERSE = new Set(["youtube.com", "medium.com", "tiktok.com", "substack.com", "vimeo.com"]);
  const KOFI_INIT = /kofiwidget2\.init\(\s*(['"])[^'"]{0,200}\1\s*,\s*(['"])[^'"]{0,60}\2\s*,\s*(['"])([A-Za-z0-9_]{1,64})\3\s*\)/;
  const KOFI_OVERLAY = /kofiWidgetOverlay\.draw\(\s*(['"])([A-Za-z0-9_]{1,64})\1/;
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
  const YOUTUBE_HOSTS = new Set(["youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com"]);

  /* The platforms (platforms.js, generated from the one table of platforms,
   * mecene/data/platforms.toml, which cites the real markup of each entry):
   * their profile addresses (/NAME, /NAME/<one of `sub`>, Patreon's /c/NAME;
   * other paths, a shop item, a post, `user?u=`, `bePatron`, name no profile
   * and give no key; `routes` are the platform's own pages), their official
   * buttons and widgets, and whether they are funding pages. Read once. */
  let platformTable = null;
  function platformsOf() {
    if (platformTable) return platformTable;
    const raw = globalThis.MECENE_PLATFORMS;
    const byHost = {};
    const images = [];
    const scripts = [];
    const widgets = {};
    const hosts = [];
    const escape = (t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    for (const [scheme, p] of Object.entries(raw && typeof raw === "object" ? raw : {})) {
      if (!p || typeof p !== "object") continue;
      const entry = {
        scheme, sub: p.sub || [], routes: p.routes || [], prefix: p.prefix || null,
        funding: p.funding === true,
      };
      PRIORITY[scheme] = entry.funding ? 2 : 4;
      if (p.profile) for (const h of p.hosts || []) byHost[h] = entry;
      for (const re of p.buttonImages || []) images.push(new RegExp(re));
      for (const e of p.embedScripts || []) scripts.push({ re: new RegExp(e.src), attributes: e.attributes || [], entry });
      if ((p.widgetScripts || []).length) widgets[scheme] = p.widgetScripts.map((re) => new RegExp(re, "i"));
      if (entry.funding) hosts.push(...(p.hosts || []).map(escape));
    }
    hosts.push("github\\.com\\/sponsors\\/");
    // The same file's other tables, their expressions compiled once too.
    const entries = (name) => {
      const value = globalThis[name];
      return Object.values(value && typeof value === "object" ? value : {})
        .filter((e) => e && typeof e === "object");
    };
    const table = {
      byHost, images, scripts, widgets, embedHosts: new RegExp(hosts.join("|"), "i"),
      sharedHosts: entries("MECENE_SHARED_HOSTS"),
      projectPages: entries("MECENE_PROJECT_PAGES")
        .map((page) => ({ host: page.host, path: new RegExp(page.path), links: page.links })),
      copies: entries("MECENE_COPIES").filter((copy) => typeof copy.host_suffix === "string")
        .map((copy) => ({ suffix: `.${copy.host_suffix}`, path: new RegExp(copy.path) })),
    };
    if (raw) platformTable = table; // else platforms.js is not loaded yet: no platform
    return table;
  }

  /** A generated list (github-reserved.js, tracking-params.js) as a Set, read once. */
  const lists = new Map();
  function listOf(name) {
    let set = lists.get(name);
    if (!set) {
      const raw = globalThis[name];
      set = new Set(Array.isArray(raw) ? raw.filter((v) => typeof v === "string") : []);
      if (set.size) lists.set(name, set);
    }
    return set;
  }

  // -- values -------------------------------------------------------------------

  function cleanId(value) {
    if (typeof value !== "string") return null;
    const v = value.trim();
    return v && v.length <= MAX_VALUE && ID_RE.test(v) ? v : null;
  }

  /** An absolute http(s) URL without fragment or credentials, or null. */
  function cleanUrl(raw, base, httpsOnly, maxLength = MAX_VALUE) {
    if (typeof raw !== "string") return null;
    const v = raw.trim();
    if (!v || v.length > maxLength || BAD_SCHEMES.test(v) || /[\s<>"'`]/.test(v)) return null;
    let url;
    try {
      url = new URL(v, base);
    } catch (e) {
      return null;
    }
    if (url.protocol !== "https:" && (httpsOnly || url.protocol !== "http:")) return null;
    // The host as the daemon takes it (mecene/keys.py): ASCII labels (an
    // internationalised name arrives as punycode) or an IP literal. A name
    // the URL parser kept percent-encoded would be refused there.
    if (!HOST_RE.test(url.hostname) && !/^\[[0-9a-f:.]+\]$/.test(url.hostname)) return null;
    url.hash = "";
    url.username = "";
    url.password = "";
    return url;
  }

  /** A link's address: flattr.com links may be long (their id is checked alone). */
  function linkUrl(raw, base) {
    const long = typeof raw === "string" && /^\s*https?:\/\/(?:www\.|api\.)?flattr\.com\//i.test(raw);
    return cleanUrl(raw, base, false, long ? MAX_URL : MAX_VALUE);
  }

  function fediverseKey(value) {
    if (typeof value !== "string" || value.length > MAX_VALUE) return null;
    const m = FEDI_RE.exec(value.trim());
    return m ? `fediverse:@${m[1]}@${m[2].toLowerCase()}` : null;
  }

  /** A fediverse profile's address, https://HOST/@USER, as a key; else null. */
  function fediverseProfile(url) {
    if (url.protocol !== "https:" || url.search || url.port) return null;
    const m = /^\/@([A-Za-z0-9_.-]{1,100})\/?$/.exec(url.pathname);
    if (!m || NOT_FEDIVERSE.has(registrableDomain(url.hostname))) return null;
    return fediverseKey(`@${m[1]}@${url.hostname}`);
  }

  function githubLogin(name) {
    return typeof name === "string" && GITHUB_LOGIN_RE.test(name)
      && !listOf("MECENE_GITHUB_RESERVED").has(name.toLowerCase()) ? name : null;
  }

  /** What a link to a known platform gives: undefined when the URL is not a
   * platform's (it may then be a `payment:` link); else {key, funding}, where
   * `key` is null for a platform page that is not a creator's profile (such a
   * link gives nothing, never a `payment:` key), and `funding` says the link is
   * a funding page, which counts in the head whatever its rel. */
  function platformLink(url) {
    const host = url.hostname.toLowerCase().replace(/^www\./, "");
    const parts = url.pathname.split("/").filter(Boolean);
    if (host === "flattr.com" || host === "api.flattr.com") {
      const id = url.pathname.replace(/\/+$/, "") === "/submit/auto" ? url.searchParams.get("user_id") : null;
      const clean = cleanId(id);
      return { key: clean ? `flattr:${clean}` : null, funding: true };
    }
    if (host === "github.com") {
      if (parts[0] === "sponsors") {
        const login = parts.length === 2 ? githubLogin(parts[1]) : null;
        return { key: login ? `github:${login}` : null, funding: true };
      }
      const login = parts.length ? githubLogin(parts[0]) : null;
      return { key: login ? `github:${login}` : null, funding: false };
    }
    if (host === "gist.github.com") {
      const login = parts.length ? githubLogin(parts[0]) : null;
      return { key: login ? `github:${login}` : null, funding: false };
    }
    const profile = platformsOf().byHost[host];
    if (!profile) return undefined;
    return { key: profileKey(profile, parts), funding: profile.funding };
  }

  function profileKey(profile, parts) {
    let rest = parts;
    if (profile.prefix && rest[0] === profile.prefix) rest = rest.slice(1);
    else if (rest.length && profile.routes.includes(rest[0].toLowerCase())) return null;
    if (rest.length === 0 || rest.length > 2) return null;
    if (rest.length === 2 && !profile.sub.includes(rest[1].toLowerCase())) return null;
    const id = cleanId(rest[0]);
    return id ? `${profile.scheme}:${id}` : null;
  }

  /** The creator an official embed names: a widget's script, a button image's
   * link, GitHub Sponsors' button frame; null otherwise. */
  function embedKey(el, base) {
    const tag = el.tagName;
    if (tag === "SCRIPT") {
      const url = cleanUrl(el.getAttribute("src"), base, true);
      if (!url) return null;
      const address = `${url.origin}${url.pathname}`;
      for (const { re, attributes, entry } of platformsOf().scripts) {
        const m = re.exec(address);
        if (!m) continue;
        // The name is in the address (Liberapay's /NAME/widgets/button.js), or
        // in the script element's own attributes (Buy Me a Coffee's data-slug).
        const named = attributes.length
          ? attributes.map((a) => el.getAttribute(a)).find((v) => v && v.trim())
          : m[1];
        return named ? profileKey(entry, [named.trim()]) : null;
      }
      return null;
    }
    if (tag === "IFRAME") {
      const url = cleanUrl(el.getAttribute("src"), base, true);
      const m = url && url.hostname === "github.com"
        && /^\/sponsors\/([^/]+)\/(?:button|card)\/?$/.exec(url.pathname);
      const login = m ? githubLogin(m[1]) : null;
      return login ? `github:${login}` : null;
    }
    if (tag === "IMG") {
      const src = cleanUrl(el.getAttribute("src"), base, true);
      if (!src || !platformsOf().images.some((re) => re.test(`${src.origin}${src.pathname}`))) return null;
      const a = el.closest("a[href]");
      return a ? embedLink(a, base, src.hostname) : null;
    }
    return null;
  }

  /** The profile key of a button's link, when it goes to the button's own platform. */
  function embedLink(a, base, imageHost) {
    const url = linkUrl(a.getAttribute("href"), base);
    const link = url ? platformLink(url) : undefined;
    if (!link || !link.key) return null;
    const platform = (h) => h.toLowerCase().split(".").slice(-2).join(".");
    return platform(url.hostname) === platform(imageHost) ? link.key : null;
  }

  /** The Ko-fi names in a page's inline widget code, when it loads Ko-fi's widget. */
  function kofiWidgets(doc) {
    const out = [];
    const widget = platformsOf().widgets.kofi || [];
    const loads = Array.from(doc.scripts)
      .some((el) => widget.some((re) => re.test((el.getAttribute("src") || "").trim())));
    if (!loads) return out;
    for (const el of doc.scripts) {
      if (el.hasAttribute("src")) continue;
      const text = (el.textContent || "").slice(0, 20000);
      if (!text.includes("kofiwidget2") && !text.includes("kofiWidgetOverlay")) continue;
      const m = KOFI_INIT.exec(text) || KOFI_OVERLAY.exec(text);
      const name = m ? m[m.length - 1] : null;
      const key = name ? profileKey(platformsOf().byHost["ko-fi.com"], [name]) : null;
      if (key) out.push([key, el]);
    }
    return out;
  }

  /** A fediverse server's own page for a post or a profile (/@USER, /@USER/ID,
   * /@USER@OTHER/ID for a remote author), known by its head as Mastodon's
   * templates write it: an ActivityPub `alternate` link and the author as
   * `profile:username` "user@host". The author must be the address's own
   * user (and, for a remote author, its host). {key, el} or null. */
  function fediverseServerPage(doc, pageUrl) {
    const head = doc.head;
    if (!head || !pageUrl || pageUrl.protocol !== "https:") return null;
    const m = /^\/@([A-Za-z0-9_.-]{1,100})(?:@([A-Za-z0-9.-]{1,253}))?(?:\/\d{1,30})?\/?$/
      .exec(pageUrl.pathname);
    if (!m || NOT_FEDIVERSE.has(registrableDomain(pageUrl.hostname))) return null;
    if (!head.querySelector("link[rel~='alternate' i][type='application/activity+json' i][href]")) {
      return null;
    }
    const meta = head.querySelector("meta[property='profile:username' i][content]");
    const key = meta ? fediverseKey(meta.getAttribute("content")) : null;
    if (!key) return null;
    const [user, host] = key.slice("fediverse:@".length).split("@");
    if (user.toLowerCase() !== m[1].toLowerCase()) return null;
    if (m[2] && host !== m[2].toLowerCase()) return null;
    return { key, el: meta };
  }

  /** The project's own links on a package page (the table's `project_pages`). */
  function projectLinks(doc, pageUrl) {
    if (!pageUrl) return [];
    const host = pageUrl.hostname.toLowerCase().replace(/^www\./, "");
    for (const page of platformsOf().projectPages) {
      if (page.host !== host || !page.path.test(pageUrl.pathname)) continue;
      try {
        return Array.from(doc.querySelectorAll(page.links)).slice(0, 50);
      } catch (e) {
        return [];
      }
    }
    return [];
  }

  const LD_PARTS = /Comment|Answer|Review|Question/;

  /** The addresses the page's JSON-LD gives for its author, as SEO plugins
   * write it (Yoast SEO's graph: the Article's `author` is an `@id` reference
   * to a Person whose `url` and `sameAs` are the author's own pages):
   * [{url, el}]. A comment's, an answer's or a review's author is not the
   * page's. At most 8 scripts of 200,000 characters. */
  function jsonLdAuthorUrls(doc) {
    const out = [];
    let read = 0;
    for (const el of doc.querySelectorAll("script[type='application/ld+json' i]")) {
      if (++read > 8) break;
      const text = el.textContent || "";
      if (text.length > 200000 || !text.includes("author")) continue;
      let data;
      try {
        data = JSON.parse(text);
      } catch (e) {
        continue;
      }
      const nodes = [];
      const collect = (value, depth) => {
        if (depth > 3 || nodes.length > 200) return;
        if (Array.isArray(value)) value.forEach((v) => collect(v, depth + 1));
        else if (value && typeof value === "object") {
          nodes.push(value);
          if (value["@graph"]) collect(value["@graph"], depth + 1);
        }
      };
      collect(data, 0);
      const byId = new Map();
      for (const node of nodes) if (typeof node["@id"] === "string") byId.set(node["@id"], node);
      for (const node of nodes) {
        if (LD_PARTS.test(String(node["@type"] || "")) || !node.author) continue;
        for (let author of [].concat(node.author).slice(0, 10)) {
          if (author && typeof author === "object" && byId.has(author["@id"])) author = byId.get(author["@id"]);
          if (!author || typeof author !== "object") continue;
          for (const url of [].concat(author.url || [], author.sameAs || []).slice(0, 20)) {
            if (typeof url === "string") out.push({ url, el });
          }
        }
      }
    }
    return out;
  }

  /** A YouTube watch page's channel, by its handle: the author block of the
   * VideoObject whose itemid is this very video (`[itemprop=author]
   * link[itemprop=url]` to …/@handle). A block for another video (the app
   * moved on without rewriting it, or a recommendation) is not this one's.
   * {key, el} or null. */
  function youtubeAuthor(doc, pageUrl, base) {
    const v = pageUrl.pathname === "/watch" ? pageUrl.searchParams.get("v") : null;
    if (!v) return null;
    for (const video of doc.querySelectorAll("[itemscope][itemtype$='schema.org/VideoObject' i]")) {
      let id = null;
      try {
        id = new URL(video.getAttribute("itemid") || "", pageUrl).searchParams.get("v");
      } catch (e) { /* no address: not known to be this video */ }
      if (id !== v) continue;
      for (const link of video.querySelectorAll("[itemprop~='author'] link[itemprop~='url'][href]")) {
        const url = cleanUrl(link.getAttribute("href"), base, false);
        const m = url && YOUTUBE_HOSTS.has(url.hostname.toLowerCase())
          && /^\/(@[A-Za-z0-9_.-]{3,30})\/?$/.exec(url.pathname);
        if (m) return { key: `youtube:${m[1].toLowerCase()}`, el: link };
      }
    }
    return null;
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

  /* User content by the page's own structure (DESIGN.md, "Scope"), beyond the
   * comment lists above: what microdata and microformats call a review, an
   * answer or a reply (Stack Exchange writes each answer as
   * <div class="answer" itemprop="suggestedAnswer" itemscope
   * itemtype="http://schema.org/Answer">), and blocks repeated side by side,
   * each with its own author (a forum's posts, a shop's reviews). */
  const USER_PART = [
    "[itemprop~='review' i]", "[itemprop~='answer' i]", "[itemprop~='suggestedAnswer' i]",
    "[itemprop~='acceptedAnswer' i]", "[itemtype*='schema.org/Review' i]",
    "[itemtype*='schema.org/Answer' i]", ".h-entry .h-entry",
  ].join(",");
  const AUTHOR_MARK = "[itemprop~='author' i], .p-author, [rel~='author' i], address, .author,"
    + " .username, [data-author]";
  const MAX_SIBLINGS = 200;
  let blocks = null; // per detection: element -> its repeated authored block, or null

  /** The block of repeated, separately authored siblings `el` sits in, or null. */
  function repeatedBlock(el) {
    const path = [];
    let found = null;
    for (let node = el; node && node.parentElement && node.tagName !== "BODY"; node = node.parentElement) {
      if (blocks && blocks.has(node)) {
        found = blocks.get(node);
        break;
      }
      path.push(node);
      if (authoredSiblings(node)) {
        found = node;
        break;
      }
    }
    if (blocks) for (const node of path) blocks.set(node, found);
    return found;
  }

  /** Whether `node` is one of at least two like siblings (same tag and class)
   * that each name their own author. */
  function authoredSiblings(node) {
    // Like siblings first (cheap); a subtree is searched for an author only
    // when there are some (an author search of <main> reads the whole page).
    const like = [];
    let seen = 0;
    for (const sibling of node.parentElement.children) {
      if (++seen > MAX_SIBLINGS) break;
      if (sibling.tagName === node.tagName && sibling.className === node.className) like.push(sibling);
    }
    if (like.length < 2 || !node.querySelector(AUTHOR_MARK)) return false;
    let authored = 0;
    for (const sibling of like) {
      if (sibling.querySelector(AUTHOR_MARK) && ++authored >= 2) return true;
    }
    return false;
  }

  function scopeOf(el) {
    if (el.closest(COMMENT_SELECTOR) || el.closest(USER_PART) || repeatedBlock(el)) return "element";
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

  /* The page's own author box and the site's own chrome (DESIGN.md, "Scope"):
   * an author's box as themes and microdata write it (Minimal Mistakes'
   * author profile is a schema.org Person, its links rel="nofollow noopener
   * noreferrer"), and the header, navigation, footer and asides outside any
   * article (an article's own header is its text). */
  const AUTHOR_BOX = "[itemprop~='author' i], .h-card, .p-author, address,"
    + " [itemscope][itemtype$='schema.org/Person' i]";
  const CHROME = "header, nav, footer, aside, [role='banner' i], [role='navigation' i],"
    + " [role='contentinfo' i], [role='complementary' i]";

  function inOwnBox(el) {
    if (el.closest(AUTHOR_BOX)) return true;
    const chrome = el.closest(CHROME);
    return Boolean(chrome) && !chrome.closest("article");
  }

  /** The element's comment or sibling article, or null when it is page scope. */
  function partOf(el) {
    const comment = el.closest(COMMENT_SELECTOR) || el.closest(USER_PART) || repeatedBlock(el);
    if (comment) return comment;
    const article = el.closest("article");
    return article && scopeOf(article) === "element" ? article : null;
  }

  /** The address of an element-scope creator's own part of the page: the
   * nearest anchor (an id) from the marker up to its comment or article, on the
   * page's thing URL, else the article's own link (rel=bookmark, or its
   * headline's); same site only, so a page cannot point a flattr at another
   * site's thing. */
  function partUrl(el, doc, thing) {
    const part = partOf(el);
    if (!part || !thing) return undefined;
    for (let node = el; node; node = node.parentElement) {
      const id = node.getAttribute("id");
      if (id && id.length <= 200 && /^[A-Za-z0-9_:.-]+$/.test(id)) return `${thing}#${id}`;
      if (node === part) break;
    }
    const link = part.tagName === "ARTICLE"
      ? part.querySelector("a[rel~='bookmark'][href], h1 a[href], h2 a[href], h3 a[href]") : null;
    const url = link ? cleanUrl(link.getAttribute("href"), doc.baseURI, false, 2048) : null;
    if (!url || url.href === thing) return undefined;
    const page = new URL(thing);
    if (url.origin !== page.origin) return undefined;
    dropTracking(url);
    return url.href;
  }

  // -- a thing's URL (DESIGN.md, "A thing's URL") --------------------------------------

  /** Drop the query parameters that only track a visit (tracking-params.js).
   * The query is rewritten only when one is there, as the daemon does. */
  function dropTracking(url) {
    const tracking = listOf("MECENE_TRACKING_PARAMS");
    const keys = Array.from(url.searchParams.keys());
    if (!keys.some((k) => tracking.has(k))) return;
    for (const k of new Set(keys)) if (tracking.has(k)) url.searchParams.delete(k);
  }

  /** A writer's own part of a publishing host shared by many writers (the
   * table's `shared_hosts`) as a `site:` key: medium.com/@NAME, any page under
   * it and NAME.medium.com give `site:medium.com/@name`; any page of
   * NAME.substack.com gives `site:name.substack.com`; else null
   * (mecene/platforms.py, `site_key`, reads the same). */
  function siteKey(url, fromPage = false) {
    if (!url) return null;
    const host = url.hostname.toLowerCase().replace(/^www\./, "");
    for (const entry of platformsOf().sharedHosts) {
      const prefix = entry.prefix;
      if (entry.host === host) {
        if (typeof prefix !== "string") continue; // the host's own pages
        // A host whose own routes share the writers' names (dev.to/t/…):
        // its writer is read from an author link, never from the address.
        if (fromPage && entry.page_url === false) continue;
        const first = url.pathname.split("/").filter(Boolean)[0] || "";
        if (first.startsWith(prefix) && /^[A-Za-z0-9_.-]{1,100}$/.test(first.slice(prefix.length))) {
          return `site:${host}/${first.toLowerCase()}`;
        }
      } else if (entry.subdomains && host.endsWith(`.${entry.host}`)) {
        const name = host.slice(0, -entry.host.length - 1);
        if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(name)) continue;
        if ((entry.reserved || []).includes(name)) continue;
        return typeof prefix === "string" ? `site:${entry.host}/${prefix}${name}` : `site:${host}`;
      }
    }
    return null;
  }

  /** The original of a copy another host serves (an AMP cache: the table of
   * platforms' `copies`), read from the copy's own address; else null. */
  function copyOriginal(url) {
    if (!url) return null;
    const host = url.hostname.toLowerCase();
    for (const copy of platformsOf().copies) {
      if (!host.endsWith(copy.suffix)) continue;
      const m = copy.path.exec(url.pathname);
      if (!m || !m.groups || !m.groups.host) continue;
      const scheme = m.groups.s ? "https" : "http";
      return cleanUrl(`${scheme}://${m.groups.host}${m.groups.rest || "/"}${url.search}`, undefined, false, 2048);
    }
    return null;
  }

  /** The URL a flattr of this page is for: the page's own <link rel="canonical">
   * when it is on the same registrable domain (AMP pages, `www.` and tracking
   * variants point there), else the address; without tracking parameters,
   * fragment or credentials. null for a page that is not http(s). */
  function thingUrl(doc) {
    let url;
    try {
      url = new URL(doc.URL);
    } catch (e) {
      return null;
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return null;
    url = copyOriginal(url) || url; // a cached copy's thing is its original's
    const link = doc.head && doc.head.querySelector("link[rel~='canonical' i][href]");
    const canonical = link ? cleanUrl(link.getAttribute("href"), doc.baseURI, false, 2048) : null;
    if (canonical && registrableDomain(canonical.hostname) === registrableDomain(url.hostname)) {
      url = canonical;
    }
    url.hash = "";
    url.username = "";
    url.password = "";
    dropTracking(url);
    return url.href;
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
   *   button             an <a class="FlattrButton"> (rel= or rev= "flattr;uid:…")
   *   data               an element with data-flattr-uid
   *   embed              a platform's official button or widget (its script, image, frame)
   *   page-url           the page's own address (github.com/LOGIN, a YouTube channel)
   *   site               the registrable domain, always last of the page's entries */

  function detectCreators(doc) {
    blocks = new Map();
    try {
      return detect(doc);
    } finally {
      blocks = null;
    }
  }

  function detect(doc) {
    const found = []; // {key, scope, source, label, url, tier, order}
    let order = 0;
    const base = doc.baseURI;
    const head = doc.head;
    const thing = thingUrl(doc);
    // tier 0: the head (what the site declares); 1: page-scope markers in the body.
    const add = (key, scope, source, label, el) => {
      if (!key || key.length > MAX_VALUE) return;
      const inHead = !el || (head !== null && head.contains(el));
      const url = scope === "element" && el ? partUrl(el, doc, thing) : undefined;
      found.push({ key, scope, source, label, url, tier: inHead ? 0 : 1, order: order++ });
    };
    // Metadata in the head is the page's; the same tags in the body are
    // the page's only outside user content (a comment cannot declare them).
    const scopeHere = (el) => (head !== null && head.contains(el) ? "page" : scopeOf(el));
    let pageUrl = null;
    try {
      pageUrl = new URL(doc.URL);
    } catch (e) { /* about:blank and the like: no domain entry */ }
    const pageHost = pageUrl ? pageUrl.hostname.toLowerCase() : "";

    for (const el of doc.querySelectorAll("meta[name], meta[itemprop], meta[property='article:author' i],"
      + " link[rel], a[rel], a.FlattrButton, [data-flattr-uid]")) {
      const tag = el.tagName;
      const scope = scopeHere(el);
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
        } else if ((el.getAttribute("property") || "").toLowerCase() === "article:author") {
          // Open Graph's author, as Medium writes it: the writer's page.
          const key = siteKey(cleanUrl(content, base, false));
          if (key) add(key, scope, "meta", undefined, el);
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
      const named = rels.some((r) => r === "payment" || r === "me" || r === "author");
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
        const url = linkUrl(href, base);
        if (!url) continue;
        const link = platformLink(url);
        if (link) {
          // A <link> to a funding page counts whatever its rel; to a profile
          // (github.com/LOGIN), only as rel me, author or payment: GitHub's
          // own head links (/opensearch.xml, /manifest.json, icons) name nobody.
          if (link.key && (link.funding || named)) add(link.key, scope, "link", undefined, el);
          continue;
        }
        const fedi = rels.includes("me") ? fediverseProfile(url) : null;
        const writer = rels.includes("author") ? siteKey(url) : null;
        if (fedi) add(fedi, scope, "link", undefined, el);
        else if (writer) add(writer, scope, "link", undefined, el);
        else if (rels.includes("payment") && url.href.length <= MAX_VALUE) {
          add(`payment:${url.href}`, scope, "link", undefined, el);
        }
        continue;
      }
      if (el.hasAttribute("data-flattr-uid")) {
        const id = cleanId(el.getAttribute("data-flattr-uid"));
        if (id) add(`flattr:${id}`, scope, "data", labelOf(el), el);
      }
      if (tag !== "A") continue;
      // The Flattr button, as the official WordPress plugins write it: its
      // parameters in rel= or (older plugins) rev=, "flattr;uid:ID;…".
      const flattrParams = [el.getAttribute("rel"), el.getAttribute("rev")]
        .map((v) => (v || "").slice(0, MAX_VALUE)).find((v) => /^\s*flattr\s*;/i.test(v));
      if (el.classList.contains("FlattrButton") || flattrParams) {
        const m = /(?:^|;)\s*uid:([^;]*)/.exec(flattrParams || "");
        const id = m ? cleanId(m[1]) : null;
        if (id) add(`flattr:${id}`, scope, "button", labelOf(el), el);
        continue;
      }
      // A plain link to a profile is not a creator (the article may be about
      // that person): only rel payment, me or author counts, except in the
      // page's own author box or site chrome, where a link to a funding
      // profile counts whatever its rel (themes write rel="nofollow").
      if (!named) {
        if (scope !== "page" || !inOwnBox(el)) continue;
        const url = linkUrl(el.getAttribute("href"), base);
        const link = url ? platformLink(url) : undefined;
        if (link && link.key && link.funding) add(link.key, scope, "anchor", labelOf(el), el);
        continue;
      }
      const url = linkUrl(el.getAttribute("href"), base);
      if (!url) continue;
      const link = platformLink(url);
      if (link) {
        if (link.key) add(link.key, scope, "anchor", labelOf(el), el);
        continue;
      }
      const fedi = rels.includes("me") ? fediverseProfile(url) : null;
      const writer = rels.includes("author") ? siteKey(url) : null;
      if (fedi) add(fedi, scope, "anchor", labelOf(el), el);
      else if (writer) add(writer, scope, "anchor", labelOf(el), el);
      else if (rels.includes("payment") && url.href.length <= MAX_VALUE) {
        add(`payment:${url.href}`, scope, "anchor", labelOf(el), el);
      }
    }

    // The platforms' official buttons and widgets: the creator's own, whatever their rel.
    // (The browser's own lists of scripts, images and frames, filtered by
    // address: much cheaper on a large page than attribute selectors.)
    const embeds = [];
    for (const list of [doc.scripts, doc.images, doc.getElementsByTagName("iframe")]) {
      for (const el of list) {
        const src = el.getAttribute("src");
        if (src && platformsOf().embedHosts.test(src)) embeds.push(el);
      }
    }
    embeds.sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
    for (const el of embeds) {
      const key = embedKey(el, base);
      if (key) add(key, scopeHere(el), "embed", undefined, el);
    }
    for (const [key, el] of kofiWidgets(doc)) add(key, scopeHere(el), "embed", undefined, el);

    // The author's own pages, as the page's JSON-LD names them (a self-declaration,
    // as rel="me" is): a platform profile, a fediverse profile, a writer's part.
    for (const { url: raw, el } of jsonLdAuthorUrls(doc)) {
      const url = cleanUrl(raw, base, false);
      if (!url) continue;
      const link = platformLink(url);
      const key = (link && link.key) || fediverseProfile(url) || siteKey(url);
      if (key) add(key, scopeHere(el), "meta", undefined, el);
    }

    // A package's page lists its project's own links (PyPI's "Funding"): the
    // table's `project_pages` say where; a funding profile there counts.
    for (const link of projectLinks(doc, pageUrl)) {
      const url = linkUrl(link.getAttribute("href"), base);
      const target = url ? platformLink(url) : undefined;
      if (target && target.key && target.funding) {
        add(target.key, scopeHere(link), "anchor", labelOf(link), link);
      }
    }

    // A writer's own part of a shared publishing host: the page's own address.
    const writerPage = siteKey(pageUrl, true);
    if (writerPage) add(writerPage, "page", "page-url");
    const server = fediverseServerPage(doc, pageUrl);
    if (server) add(server.key, "page", "meta", undefined, server.el);

    // The page itself: github.com/LOGIN (a profile, a repository, a Sponsors
    // page), gist.github.com/LOGIN, a YouTube channel's page.
    if (pageUrl && (pageHost === "github.com" || pageHost === "www.github.com"
        || pageHost === "gist.github.com")) {
      const link = platformLink(pageUrl);
      if (link && link.key) add(link.key, "page", "page-url");
    } else if (pageUrl && YOUTUBE_HOSTS.has(pageHost)) {
      const m = /^\/channel\/(UC[A-Za-z0-9_-]{1,60})(?:\/|$)/.exec(pageUrl.pathname);
      if (m) add(`youtube:${m[1]}`, "page", "page-url");
      const handle = /^\/(@[A-Za-z0-9_.-]{3,30})(?:\/|$)/.exec(pageUrl.pathname);
      if (handle) add(`youtube:${handle[1].toLowerCase()}`, "page", "page-url");
      const author = youtubeAuthor(doc, pageUrl, base);
      if (author) add(author.key, "page", "meta", undefined, author.el);
    }

    platformsOf(); // the platforms' priorities
    const rank = (e) => PRIORITY[e.key.slice(0, e.key.indexOf(":"))] ?? 9;
    const page = found.filter((e) => e.scope === "page")
      .sort((a, b) => a.tier - b.tier || rank(a) - rank(b) || a.order - b.order);
    const element = found.filter((e) => e.scope === "element").sort((a, b) => a.order - b.order);
    // The site is the original's when the page is a copy another host serves.
    const original = copyOriginal(pageUrl);
    const domain = registrableDomain(original ? original.hostname : pageHost);
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
  globalThis.thingUrl = thingUrl;
  /** The key a link to `href` names by the table of platforms (a profile, or
   * a writer's part of a shared host), or null (the
   * daemon reads profile addresses by the same table: mecene/platforms.py). */
  globalThis.platformKey = (href) => {
    const url = linkUrl(href, undefined);
    const link = url ? platformLink(url) : undefined;
    return (link && link.key) || siteKey(url) || null;
  };
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
    // Without the suffix rules (the worker gives them first; a page that
    // moved on between the two injections lacks them), a `domain:` could be
    // a public suffix's: say nothing, the next injection will.
    if (!globalThis.MECENE_PSL) return;
    const creators = detectCreators(document);
    const thing = thingUrl(document);
    const keys = `${document.title}\n${thing}\n${creators.map((c) => c.key).join("\n")}`;
    if (!force && keys === lastKeys && location.href === lastUrl) return;
    lastKeys = keys;
    lastUrl = location.href;
    try {
      const title = String(document.title || "").replace(/\s+/g, " ").trim().slice(0, 200);
      runtime.sendMessage({ action: "creators", args: { creators, url: location.href, thing, title } })
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
