// The leadership overview: open work orders by kind and county, overdue ones, times, trend,
// and the department systems' webhook subscriptions (failing ones marked).
"use strict";
(async () => {
  const { t, label, api, el, fmtDuration } = CW;
  await CW.start();
  let data = null;

  function bars(target, counts, label = (k) => k) {
    const max = Math.max(1, ...Object.values(counts));
    const rows = Object.entries(counts);
    document.getElementById(target).replaceChildren(...(rows.length ? rows.map(([k, v]) => el("div", { class: "bar-row" },
      el("span", { class: "bar-label", text: label(k) }),
      el("span", { class: "bar", style: { width: `${Math.round((v / max) * 100)}%` } }),
      el("span", { class: "bar-value", text: String(v) }))) : [el("p", { class: "muted", text: t("ov.none") })]));
  }
  function table(headers, rows) {
    return el("table", { class: "grid" }, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))),
      el("tbody", {}, ...rows.map((r) => el("tr", {}, ...r.map((c) => (c instanceof Node ? el("td", {}, c) : el("td", { text: String(c) })))))));
  }
  function render() {
    if (!data) return;
    const name = (id) => data.names[id] || id;
    document.getElementById("ov-open").textContent = data.open;
    document.getElementById("ov-overdue").textContent = data.overdue.length;
    document.getElementById("ov-total").textContent = data.total;
    bars("ov-kind", data.open_by_kind, (k) => label("kind", k));
    bars("ov-county", data.open_by_county, name);
    const counties = Object.keys(data.open_by_county);
    const kinds = Object.keys(data.open_by_kind_county);
    document.getElementById("ov-matrix").replaceChildren(kinds.length ? table([t("field.kind"), ...counties.map(name)],
      kinds.map((k) => [label("kind", k), ...counties.map((c) => data.open_by_kind_county[k][c] || 0)])) : el("p", { class: "muted", text: t("ov.none") }));
    const depts = Object.entries(data.times_by_department);
    document.getElementById("ov-times").replaceChildren(depts.length ? table(
      [t("ov.department"), t("ov.n"), t("ov.sign_p50"), t("ov.sign_p90"), t("ov.handle_p50"), t("ov.handle_p90"), t("ov.overdue")],
      depts.map(([d, s]) => [label("dept", d), s.sign.n, fmtDuration(s.sign.p50_s), fmtDuration(s.sign.p90_s), fmtDuration(s.handle.p50_s), fmtDuration(s.handle.p90_s), s.overdue]))
      : el("p", { class: "muted", text: t("ov.none") }));
    document.getElementById("ov-overdue-list").replaceChildren(data.overdue.length ? table(
      [t("field.kind"), t("field.severity"), t("field.state"), t("field.centre"), t("field.department"), t("ov.overdue"), "id"],
      data.overdue.slice(0, 200).map((o) => [label("kind", o.kind), label("severity", o.severity), label("state", o.state), name(o.centre), label("dept", o.department), CW.dueEl(o.overdue, o.overdue === "sign" ? o.sign_due_ms : o.resolve_due_ms), o.id]))
      : el("p", { class: "muted", text: t("ov.none") }));
    const max = Math.max(1, ...data.trend.map((h) => h.blue + h.yellow + h.orange + h.red));
    document.getElementById("ov-trend").replaceChildren(...data.trend.map((h) => {
      const total = h.blue + h.yellow + h.orange + h.red;
      const col = el("div", { class: "trend-col", title: `${CW.fmtTime(h.hour_ms)}: ${total}` });
      for (const s of ["red", "orange", "yellow", "blue"]) if (h[s]) col.append(el("div", { class: `bg-${s}`, style: { height: `${(h[s] / max) * 100}%` } }));
      return el("div", { class: "trend-cell" }, col, el("span", { text: CW.hourOf(h.hour_ms) }));
    }));
  }
  // Department systems (webhook subscriptions), for leaders, when the console serves the API.
  let systems = null;
  function renderSystems() {
    const card = document.getElementById("ov-systems-card");
    card.classList.toggle("sys-off", systems === null);
    if (systems === null) return;
    const health = (s) => (s.failing ? "failing" : s.failing_since_ms ? "retrying" : "ok");
    document.getElementById("ov-systems").replaceChildren(systems.length ? table(
      [t("sys.id"), t("sys.url"), t("sys.status"), t("sys.backlog"), t("sys.delivered"), t("sys.dead"), t("sys.since"), t("sys.last_error")],
      systems.map((s) => [s.id, s.url, el("span", { class: `sys-${health(s)}`, "data-sys": s.id, text: t(`sys.${health(s)}`) }),
        s.backlog, s.delivered, s.dead_letters, s.failing_since_ms ? CW.fmtTime(s.failing_since_ms) : "–", s.last_error || "–"]))
      : el("p", { class: "muted", text: t("sys.none") }));
    for (const row of document.querySelectorAll("#ov-systems tbody tr")) {
      row.classList.toggle("failing", !!row.querySelector(".sys-failing"));
    }
  }
  async function loadSystems() {
    if (!CW.state.user || CW.state.user.role !== "leader") return;
    try { systems = (await api("/api/admin/webhooks")).subscriptions; } catch (e) { systems = null; }
    renderSystems();
  }
  async function load() { data = await api("/api/overview"); render(); await loadSystems(); }
  document.addEventListener("cw:lang", () => { render(); renderSystems(); });
  await load();
  setInterval(load, 5000);
})();
