// Shared by every page: the language catalogs, the API helper (CSRF header), the top bar.
"use strict";
const CW = (() => {
  const state = { lang: localStorage.getItem("cw.lang") || (navigator.language.startsWith("zh") ? "zh" : "en"), cat: {}, csrf: "", user: null };

  async function loadLang(lang) {
    const r = await fetch(`/static/i18n/${lang}.json`, { cache: "no-cache" });
    state.cat = await r.json();
    state.lang = lang;
    localStorage.setItem("cw.lang", lang);
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    applyI18n(document);
  }
  function t(key) { return state.cat[key] ?? key; }
  function applyI18n(root) {
    root.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
    root.querySelectorAll("[data-i18n-ph]").forEach((el) => { el.placeholder = t(el.dataset.i18nPh); });
    document.title = t("app.title");
  }
  async function api(path, opts = {}) {
    const headers = Object.assign({ "Content-Type": "application/json" }, opts.headers || {});
    if (opts.method && opts.method !== "GET") headers["X-CSRF-Token"] = state.csrf;
    const r = await fetch(path, Object.assign({}, opts, { headers, credentials: "same-origin" }));
    const body = await r.json().catch(() => ({}));
    if (r.status === 401 && !path.startsWith("/api/login")) { location.href = "/login"; }
    if (!r.ok) { const e = new Error(body.error || r.statusText); e.status = r.status; throw e; }
    return body;
  }
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (k === "class") e.className = v; else if (k === "text") e.textContent = v;
      else if (k === "style") Object.assign(e.style, v); // through the DOM: no inline style for CSP
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const c of children) if (c != null) e.append(c);
    return e;
  }
  // Leaflet content (tooltips, icons) as a DOM node holding plain text, never parsed as HTML.
  function textNode(text, cls = "") { return el("span", { class: cls, text: String(text ?? "") }); }
  function fmtTime(ms) {
    if (!ms) return "";
    const d = new Date(Number(ms));
    return d.toLocaleString(state.lang === "zh" ? "zh-CN" : "en-GB", { hour12: false });
  }
  function fmtDuration(s) {
    if (s == null) return "–";
    if (s < 90) return `${Math.round(s)} s`;
    if (s < 5400) return `${Math.round(s / 60)} min`;
    return `${(s / 3600).toFixed(1)} h`;
  }
  async function start() {
    await loadLang(state.lang);
    const me = await api("/api/me");
    state.csrf = me.csrf; state.user = me.user;
    const u = me.user;
    const who = document.getElementById("who");
    if (who) who.textContent = `${u.display || u.name} · ` + (u.role === "leader" ? t("who.leader") : `${t("who.scope")}: ${u.centre} / ${u.department}`);
    const sw = document.getElementById("lang-switch");
    if (sw) sw.addEventListener("click", async () => { await loadLang(state.lang === "zh" ? "en" : "zh"); document.dispatchEvent(new Event("cw:lang")); });
    const so = document.getElementById("signout");
    if (so) so.addEventListener("click", async () => { await api("/api/logout", { method: "POST" }); location.href = "/login"; });
    return me;
  }
  return { state, t, api, el, textNode, fmtTime, fmtDuration, loadLang, applyI18n, start };
})();
