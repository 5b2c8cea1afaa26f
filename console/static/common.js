// Shared by every page: the language catalogs, the API helper (CSRF header), the top bar.
"use strict";
const CW = (() => {
  const browserLang = (navigator.languages && navigator.languages[0]) || navigator.language || "en";
  const state = { lang: localStorage.getItem("cw.lang") || (browserLang.toLowerCase().startsWith("zh") ? "zh" : "en"), cat: {}, csrf: "", user: null, tz: "Asia/Shanghai" };

  async function loadLang(lang) {
    const r = await fetch(`/static/i18n/${lang}.json`, { cache: "no-cache" });
    state.cat = await r.json();
    state.lang = lang;
    localStorage.setItem("cw.lang", lang);
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    applyI18n(document);
  }
  function t(key, vars) {
    let s = state.cat[key] ?? key;
    if (vars) for (const [k, v] of Object.entries(vars)) s = s.replace(`{${k}}`, v);
    return s;
  }
  // A code's label in the current language (the code itself when there is none).
  function label(group, code) { return code == null || code === "" ? "-" : state.cat[`${group}.${code}`] ?? String(code); }
  // An element showing a code's label, the code as its tooltip.
  function labelEl(tag, group, code, attrs = {}) { return el(tag, Object.assign({ text: label(group, code), title: String(code ?? "") }, attrs)); }
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
  // Times: one zone (the server's [console] time_zone), one format, YYYY-MM-DD HH:mm:ss.
  function toMs(v) {
    if (v == null || v === "") return NaN;
    if (typeof v === "number") return v;
    return /^\d+$/.test(String(v)) ? Number(v) : Date.parse(v);
  }
  let fmt = null;
  function fmtTime(v) {
    const ms = toMs(v);
    if (!Number.isFinite(ms)) return "";
    if (!fmt || fmt.resolvedOptions().timeZone !== state.tz) {
      fmt = new Intl.DateTimeFormat("en-GB", { timeZone: state.tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
    }
    const p = Object.fromEntries(fmt.formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  }
  function hourOf(v) { return fmtTime(v).slice(11, 13); }
  function fmtSpan(s) {
    if (s == null || !Number.isFinite(Number(s))) return "–";
    s = Math.abs(Number(s));
    if (s < 90) return t("time.s", { n: Math.round(s) });
    if (s < 90 * 60) return t("time.min", { n: Math.round(s / 60) });
    if (s < 48 * 3600) return t("time.h", { n: +(s / 3600).toFixed(s < 36000 ? 1 : 0) });
    return t("time.d", { n: +(s / 86400).toFixed(1) });
  }
  const fmtDuration = fmtSpan;
  function fmtAge(v) {
    const s = (Date.now() - toMs(v)) / 1000;
    if (!Number.isFinite(s)) return "";
    return s < 10 ? t("age.now") : t("age.ago", { t: fmtSpan(s) });
  }
  // "sign off within 4 min" / "sign-off overdue by 3 min" (the caller marks overdue red).
  function fmtDue(kind, v) {
    const s = (toMs(v) - Date.now()) / 1000;
    return s >= 0 ? t(`due.${kind}.left`, { t: fmtSpan(s) }) : t(`due.${kind}.over`, { t: fmtSpan(s) });
  }
  // Elements that keep themselves current: data-age (relative age), data-due (countdown).
  function ageEl(v, attrs = {}) { return el("time", Object.assign({ class: "age", "data-age": String(toMs(v)), title: fmtTime(v), text: fmtAge(v) }, attrs)); }
  function dueEl(kind, v, attrs = {}) {
    const over = toMs(v) < Date.now();
    return el("span", Object.assign({ class: over ? "due overdue" : "due", "data-due": String(toMs(v)), "data-due-kind": kind, title: fmtTime(v), text: fmtDue(kind, v) }, attrs));
  }
  function tick() {
    document.querySelectorAll("[data-age]").forEach((e) => { e.textContent = fmtAge(Number(e.dataset.age)); });
    document.querySelectorAll("[data-due]").forEach((e) => {
      const ms = Number(e.dataset.due);
      e.textContent = fmtDue(e.dataset.dueKind, ms);
      e.classList.toggle("overdue", ms < Date.now());
    });
  }
  setInterval(tick, 1000);
  // Evidence values with their units: times, durations, distances, speeds, readings.
  function fmtValue(key, v, evidence = {}) {
    if (v == null) return "-";
    if (typeof v === "object") return JSON.stringify(v);
    const num = typeof v === "number" ? v : NaN;
    const show = Number.isFinite(num) ? String(Number.isInteger(num) ? num : +num.toFixed(3)) : String(v);
    const unit = evidence.unit ? ` ${evidence.unit}` : "";
    if (key.endsWith("_ms") && Number.isFinite(num)) return fmtTime(num);
    if (key.endsWith("_ts")) return fmtTime(v);
    if (key.endsWith("_s") && Number.isFinite(num)) return fmtSpan(num);
    if (key.endsWith("_kmh")) return `${show} km/h`;
    if (key.endsWith("_m")) return `${show} m`;
    if (key.endsWith("_per_h")) return `${show}${unit} /h`;
    if (key === "zone_kind") return label("zone_kind", v);
    if (["value", "limit", "last_value", "peak", "from_value", "median", "tolerance"].includes(key)) return `${show}${unit}`;
    return show;
  }
  async function start() {
    await loadLang(state.lang);
    const me = await api("/api/me");
    state.csrf = me.csrf; state.user = me.user; state.tz = me.time_zone || state.tz;
    const u = me.user;
    const who = document.getElementById("who");
    const showWho = () => { if (who) who.textContent = `${u.display || u.name} · ` + (u.role === "leader" ? t("who.leader") : `${t("who.scope")}: ${u.centre} / ${label("dept", u.department)}`); };
    showWho();
    document.addEventListener("cw:lang", showWho);
    const sw = document.getElementById("lang-switch");
    if (sw) sw.addEventListener("click", async () => { await loadLang(state.lang === "zh" ? "en" : "zh"); document.dispatchEvent(new Event("cw:lang")); });
    const so = document.getElementById("signout");
    if (so) so.addEventListener("click", async () => { await api("/api/logout", { method: "POST" }); location.href = "/login"; });
    return me;
  }
  return { state, t, label, labelEl, api, el, textNode, toMs, fmtTime, hourOf, fmtSpan, fmtDuration, fmtAge, fmtDue, ageEl, dueEl, fmtValue, loadLang, applyI18n, start };
})();
