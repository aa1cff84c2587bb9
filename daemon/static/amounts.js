// Copied by scripts/make-webdata from extension/amounts.js. Do not edit: edit that file.
/* Money as a person reads it: the one place amounts are written out in
 * JavaScript (the popup; the dashboard gets a copy made by
 * scripts/make-webdata). Integer cents in, text out, with integer arithmetic
 * only: no float touches money (`-5` is "-0.05 €", never "-1.95 €"). */
(() => {
  "use strict";

  /** 1234 → "12.34 €" (a no-break space before €); anything but integer cents → "?". */
  function euros(cents) {
    return Number.isSafeInteger(cents) ? `${amount(cents)}\u00a0€` : "?";
  }

  /** 1234 → "12.34", for an input field. */
  function amount(cents) {
    const abs = Math.abs(cents);
    const part = abs % 100;
    return `${cents < 0 ? "-" : ""}${(abs - part) / 100}.${String(part).padStart(2, "0")}`;
  }

  /** "4.50" or "4,5" → 450; "" → null when `optional`; anything else throws. */
  function parseEuros(text, optional) {
    const t = text.trim();
    if (!t && optional) return null;
    const m = /^(\d{1,7})(?:[.,](\d{1,2}))?\s*€?$/.exec(t);
    if (!m) throw new Error(`not an amount in euros: ${t || "(empty)"}`);
    return Number(m[1]) * 100 + Number((m[2] || "0").padEnd(2, "0"));
  }

  globalThis.MeceneAmounts = { euros, amount, parseEuros };
})();
