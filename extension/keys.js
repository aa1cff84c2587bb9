/* Mécène creator keys as a person reads them (DESIGN.md, "Labels are the
 * page's words"): wherever a page's label is shown, the key's readable form
 * stands beside it, so a page cannot pass for someone else. */
(() => {
  "use strict";
  /** "liberapay.com/" for liberapay: keys, "youtube.com/" for a YouTube
   * handle's: the table of platforms (platforms.js). */
  function profilePrefix(scheme, value) {
    const table = globalThis.MECENE_PLATFORMS;
    const own = Object.prototype.hasOwnProperty;
    if (!table || !own.call(table, scheme)) return null;
    const platform = table[scheme];
    return value.startsWith("@") && platform.handleReadable ? platform.handleReadable : platform.readable;
  }

  /** "@alice@example.social", "liberapay.com/bob", "example.org", "wallet.example/alice". */
  function readableKey(key) {
    const colon = key.indexOf(":");
    const scheme = key.slice(0, colon);
    const value = key.slice(colon + 1);
    if (scheme === "fediverse" || scheme === "domain" || scheme === "site") return value;
    if (scheme === "flattr") return `Flattr ID ${value}`;
    const prefix = profilePrefix(scheme, value);
    if (prefix) return prefix + value;
    if (scheme === "wm" || scheme === "payment") {
      try {
        const url = new URL(value);
        return (url.host + url.pathname + url.search).replace(/\/$/, "");
      } catch (e) {
        return value;
      }
    }
    return key;
  }

  // Where a page's words name a thing, not a person: a Flattr button's text
  // or title is the post's title ("Flattr this: My holiday"), never its author.
  const NOT_A_NAME = new Set(["button", "data"]);

  /** {name, key}: the page's label when it gave one that names the creator,
   * else the readable key; `key` is the readable key, shown beside a label
   * (null when the name is it). `source`: where the page named them. */
  function displayName(key, label, source) {
    const readable = readableKey(key);
    const words = typeof label === "string" && !NOT_A_NAME.has(source) ? label.trim() : "";
    if (!words || words.toLowerCase() === readable.toLowerCase()) return { name: readable, key: null };
    return { name: words, key: readable };
  }

  globalThis.MeceneKeys = { readableKey, displayName };
})();
