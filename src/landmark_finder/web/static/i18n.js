// The page's language: texts come from the server's JSON message catalog (api/messages, made
// from the same .po files as the CLI and desktop app). The first language is the browser's
// (Accept-Language / navigator.languages), or the reader's earlier choice; the switch in the
// header changes it in place, without a reload. Plain script, no build step.
"use strict";

window.i18n = (function () {
  const KEY = "landmark-finder.lang";
  let lang = "en";
  let messages = {};
  let plural = { one: 0, other: 1 };
  let languages = [];
  const listeners = [];
  // the app's root, from where this script is served (static/i18n.js), for any page under it
  const API = new URL("../api/messages", document.currentScript.src).href;

  const fill = (text, params) => text.replace(/\{(\w+)\}/g, (m, k) => (params && k in params ? String(params[k]) : m));

  // gettext(msg) with {name} placeholders; the English text when there is no translation.
  function _(msg, params) {
    const got = messages[msg];
    return fill(typeof got === "string" ? got : msg, params);
  }

  // ngettext: the plural form for n, chosen by the language's own rule.
  function ngettext(singular, pluralText, n, params) {
    const forms = messages[singular];
    let text;
    if (Array.isArray(forms)) {
      let i = 0;
      try { i = plural[new Intl.PluralRules(lang).select(n)] ?? plural.other ?? 0; } catch (e) { i = 0; }
      text = forms[Math.min(i, forms.length - 1)];
    } else {
      text = n === 1 ? singular : pluralText;
    }
    return fill(text, { n: n, ...params });
  }

  // Elements marked data-i18n keep their English text as the key; data-i18n-attr="alt,title"
  // translates those attributes the same way.
  function translatePage() {
    document.documentElement.lang = lang;
    for (const el of document.querySelectorAll("[data-i18n]")) {
      if (!el.dataset.i18n) el.dataset.i18n = el.textContent.trim();
      el.textContent = _(el.dataset.i18n);
    }
    for (const el of document.querySelectorAll("[data-i18n-attr]")) {
      for (const attr of el.dataset.i18nAttr.split(",")) {
        const key = `i18nSrc${attr.replace(/[^a-z]/gi, "")}`;
        if (!el.dataset[key]) el.dataset[key] = el.getAttribute(attr) || "";
        el.setAttribute(attr, _(el.dataset[key]));
      }
    }
    const select = document.getElementById("lang");
    if (select) {
      if (select.options.length !== languages.length) {
        select.replaceChildren(...languages.map((l) => new Option(l.name, l.code)));
      }
      select.value = lang;
    }
  }

  async function load(wanted) {
    const q = wanted ? `?lang=${encodeURIComponent(wanted)}` : "";
    const r = await fetch(`${API}${q}`);
    if (!r.ok) throw new Error(`${r.status}`);
    const body = await r.json();
    lang = body.lang;
    messages = body.messages || {};
    plural = body.plural || plural;
    languages = body.languages || [];
  }

  function firstChoice() {
    try { const saved = localStorage.getItem(KEY); if (saved) return saved; } catch (e) { /* private mode */ }
    return (navigator.languages && navigator.languages[0]) || navigator.language || "";
  }

  async function setLanguage(wanted, remember) {
    await load(wanted);
    if (remember) { try { localStorage.setItem(KEY, lang); } catch (e) { /* private mode */ } }
    translatePage();
    for (const cb of listeners) cb(lang);
  }

  const ready = setLanguage(firstChoice(), false).catch(() => {
    translatePage();  // no catalog: English, and the page still works
    for (const cb of listeners) cb(lang);
  });

  document.addEventListener("DOMContentLoaded", () => {
    const select = document.getElementById("lang");
    if (select) select.addEventListener("change", () => setLanguage(select.value, true));
  });

  return {
    _: _,
    ngettext: ngettext,
    ready: ready,
    setLanguage: setLanguage,
    onChange: (cb) => listeners.push(cb),
    get lang() { return lang; },
  };
})();
