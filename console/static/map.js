// The situation map: zones, jurisdictions, live work orders, the incident panel and its actions.
"use strict";
(async () => {
  const { t, label, labelEl, api, el, textNode } = CW;
  const COLOURS = { blue: "#1f6feb", yellow: "#e3b505", orange: "#f0750f", red: "#d1242f" };
  const ZONE_COLOURS = { airport_site: "#8250df", airport_protection: "#b392f0", levee: "#0a7d55", no_fishing: "#0969da", chemical_park: "#bf3989", approved_stop: "#57606a", residential: "#9a6700", construction_site: "#953800" };
  const ACTION_FIELDS = { resolve: ["feedback", "action.feedback"], return: ["reason", "action.reason"], silence: ["minutes", "action.minutes"] };
  const sevClass = (s) => `bg-${COLOURS[s] ? s : "none"}`;
  const orders = new Map();
  const markers = new Map();
  const UNSIGNED = ["dispatched", "escalated", "returned"];
  let selected = null;
  let returnTo = [];
  let meta = null;

  await CW.start();
  const map = L.map("map", { minZoom: 6, maxZoom: 18, zoomControl: true, attributionControl: false }).setView([32.1, 121.0], 9);
  const [zones, juris, basemap] = await Promise.all([api("/api/geo/zones"), api("/api/geo/jurisdictions"), api("/api/geo/basemap")]);
  // The offline basemap (no tiles): sea, neighbouring land, the river, district names.
  map.createPane("basemap").style.zIndex = 350; // under the jurisdictions (overlay pane, 400)
  map.createPane("placeLabels").style.zIndex = 450; // names above the areas, under markers
  const BASE_STYLE = { sea: { color: "#9ec5e8", fillColor: "#cfe3f5" }, river: { color: "#7fb2e0", fillColor: "#a9cdee" }, land: { color: "#c8ccd1", fillColor: "#eef0f2" } };
  const baseLayer = L.geoJSON(basemap, {
    pane: "basemap",
    interactive: false,
    filter: (f) => f.properties.kind !== "label",
    style: (f) => ({ ...(BASE_STYLE[f.properties.kind] || BASE_STYLE.land), weight: 0.8, fillOpacity: 1 }),
  });
  // Names read "English (中文)": the Chinese part alone when the console speaks Chinese.
  const placeName = (name) => { const m = /^(.*) \((.+)\)$/.exec(name); return m ? (CW.state.lang === "zh" ? m[2] : m[1]) : name; };
  const placeLabels = [];
  for (const f of basemap.features.filter((f) => f.properties.kind === "label")) {
    const [lon, lat] = f.geometry.coordinates;
    const span = el("span", { text: placeName(f.properties.name), title: f.properties.name });
    placeLabels.push([span, f.properties.name]);
    const icon = L.divIcon({ html: span, className: "cw-place-label", iconSize: null });
    baseLayer.addLayer(L.marker([lat, lon], { icon, interactive: false, keyboard: false, pane: "placeLabels" }));
  }
  baseLayer.addTo(map);
  document.addEventListener("cw:lang", () => { for (const [span, name] of placeLabels) span.textContent = placeName(name); });
  const jurisLayer = L.geoJSON(juris, {
    style: (f) => ({ color: "#6e7781", weight: f.properties.level === "county" ? 2 : f.properties.level === "city" ? 3 : 0.7, fillColor: "#f6f8fa", fillOpacity: f.properties.level === "city" ? 0.5 : 0, dashArray: f.properties.level === "town" ? "3 3" : null }),
    onEachFeature: (f, layer) => layer.bindTooltip(textNode(f.properties.name), { sticky: true }),
  }).addTo(map);
  const zoneLayer = L.geoJSON(zones, {
    style: (f) => ({ color: ZONE_COLOURS[f.properties.kind] || "#444", weight: 1.5, fillOpacity: 0.18 }),
    onEachFeature: (f, layer) => layer.bindTooltip(textNode(`${f.properties.name} (${f.properties.kind})`), { sticky: true }),
  }).addTo(map);
  map.fitBounds(jurisLayer.getBounds(), { padding: [10, 10] });
  const cluster = L.markerClusterGroup({ maxClusterRadius: 40, showCoverageOnHover: false,
    iconCreateFunction: (c) => {
      const sev = c.getAllChildMarkers().map((m) => m.options.severity);
      const worst = ["red", "orange", "yellow", "blue"].find((s) => sev.includes(s)) || "blue";
      return L.divIcon({ html: el("div", { class: `bg-${worst}`, text: String(c.getChildCount()) }), className: "cw-cluster", iconSize: [34, 34] });
    } }).addTo(map);
  let layerControl = null;
  function buildLayerControl() {
    // Rebuilt on a language switch so the control shows the names in that language.
    if (layerControl) layerControl.remove();
    layerControl = L.control.layers(null, { [t("layer.basemap")]: baseLayer, [t("layer.jurisdictions")]: jurisLayer, [t("layer.zones")]: zoneLayer, [t("layer.incidents")]: cluster }, { collapsed: false }).addTo(map);
  }

  function centreName(id) { return meta.names[id] || id; }
  function filters() { return Object.fromEntries(new FormData(document.getElementById("filters"))); }
  function passes(wo) { return Object.entries(filters()).every(([k, v]) => !v || String(wo[k]) === v); }

  function fillFilters() {
    const f = document.getElementById("filters");
    const opts = { centre: meta.centres.map((c) => [c.id, c.name]), department: meta.departments.map((d) => [d, label("dept", d)]),
      kind: [...new Set([...meta.kinds, ...[...orders.values()].map((o) => o.kind)])].sort().map((k) => [k, label("kind", k)]),
      severity: meta.severities.map((s) => [s, t(`severity.${s}`)]), state: meta.states.map((s) => [s, t(`state.${s}`)]) };
    for (const [name, list] of Object.entries(opts)) {
      const sel = f.elements[name]; const keep = sel.value;
      sel.replaceChildren(el("option", { value: "", text: t("filter.all") }), ...list.map(([v, label]) => el("option", { value: v, text: label })));
      sel.value = keep;
    }
  }

  function markerFor(wo) {
    const m = L.circleMarker([Number(wo.lat), Number(wo.lon)], { radius: 8, color: "#24292f", weight: 1, fillColor: COLOURS[wo.severity] || "#888", fillOpacity: 0.9, severity: wo.severity });
    m.bindTooltip(textNode(`${label("severity", wo.severity)} · ${label("kind", wo.kind)} · ${wo.subject}`));
    m.on("click", () => openOrder(wo.id));
    return m;
  }

  function render() {
    const list = document.getElementById("orders");
    const shown = [...orders.values()].filter(passes).sort((a, b) => String(b.created_ms).localeCompare(String(a.created_ms)));
    cluster.clearLayers(); markers.clear();
    const ms = [];
    for (const wo of shown) {
      if (wo.lat === "" || wo.lon === "" || wo.lat == null) continue;
      const m = markerFor(wo); markers.set(wo.id, m); ms.push(m);
    }
    cluster.addLayers(ms);
    document.getElementById("count").textContent = `(${shown.length})`;
    list.replaceChildren(...(shown.length ? shown.slice(0, 500).map(row) : [el("li", { class: "empty", text: t("list.empty") })]));
    Attention.count(orders.values());
  }

  function deadline(wo) {
    if (UNSIGNED.includes(wo.state) && wo.sign_due_ms) return CW.dueEl("sign", wo.sign_due_ms);
    if (["signed", "handling"].includes(wo.state) && wo.resolve_due_ms) return CW.dueEl("resolve", wo.resolve_due_ms);
    return null;
  }

  function row(wo) {
    const open = () => openOrder(wo.id, true);
    return el("li", { class: `order sev-${wo.severity}${wo.id === selected ? " selected" : ""}${Attention.urgent(wo) ? " attention" : ""}`, "data-wo": wo.id, tabindex: "0", role: "button",
      onclick: open, onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); open(); } } },
      el("span", { class: `dot ${sevClass(wo.severity)}` }),
      labelEl("span", "severity", wo.severity, { class: `sev-label sev sev-${wo.severity}` }),
      labelEl("span", "kind", wo.kind, { class: "kind" }),
      labelEl("span", "state", wo.state, { class: "state", "data-state": wo.state }),
      el("div", { class: "sub", text: `${wo.subject} · ${wo.zone || "-"} · ${centreName(wo.centre)} / ${label("dept", wo.department)}` }),
      el("div", { class: "sub" }, CW.ageEl(Number(wo.created_ms)), deadline(wo) ? " · " : "", deadline(wo)),
    );
  }

  async function openOrder(id, focus = false) {
    selected = id;
    const panel = document.getElementById("panel");
    let d;
    try { d = await api(`/api/workorders/${encodeURIComponent(id)}`); }
    catch (e) { panel.replaceChildren(el("p", { class: "error", text: e.status === 404 ? `${t("error.forbidden")}: ${e.message}` : e.message })); panel.classList.remove("hidden"); return; }
    const o = d.order;
    returnTo = d.return_to || [];
    const groups = { kind: "kind", severity: "severity", state: "state", department: "dept", level: "level", subject_type: "subject_type" };
    const value = (f) => {
      if (groups[f]) return labelEl("dd", groups[f], o[f], { id: `wo-${f}`, "data-value": o[f] || "", class: f === "severity" ? `sev sev-${o.severity}` : "" });
      if (["first_ts", "ts"].includes(f)) return el("dd", { id: `wo-${f}`, "data-value": o[f] || "" }, CW.fmtTime(o[f]), " (", CW.ageEl(o[f]), ")");
      if (f === "created") return el("dd", { id: "wo-created", "data-value": o.created_ms || "" }, CW.fmtTime(Number(o.created_ms)), " (", CW.ageEl(Number(o.created_ms)), ")");
      if (f === "centre") return el("dd", { id: "wo-centre", "data-value": o.centre || "", title: o.centre || "", text: centreName(o.centre) || "-" });
      return el("dd", { id: `wo-${f}`, "data-value": o[f] || "", text: o[f] || "-" });
    };
    const fields = ["kind", "severity", "state", "subject", "subject_type", "zone", "centre", "department", "level", "created", "first_ts", "ts"];
    // A live update re-renders the open order: keep what the officer is typing.
    const kept = panel.dataset.wo === id ? [...panel.querySelectorAll(".actions [data-action][name]")].map((e) => [e.dataset.action, e.name, e.value]) : [];
    const active = document.activeElement;
    const refocus = active && panel.contains(active) && active.name ? [active.dataset.action, active.name] : null;
    const close = el("button", { class: "link", id: "panel-close", text: t("panel.close"), onclick: () => { panel.classList.add("hidden"); selected = null; render(); const r = document.querySelector(`li.order[data-wo="${CSS.escape(id)}"]`); if (r) r.focus(); } });
    panel.replaceChildren(...[
      el("div", { class: "panel-head" }, el("h2", { id: "panel-title", text: o.id }), close),
      el("dl", { class: "fields" }, ...fields.flatMap((f) => [el("dt", { text: t(`field.${f}`) }), value(f)]),
        el("dt", { text: t("field.position") }), el("dd", { text: o.lat ? `${o.lat}, ${o.lon}` : "-" })),
      deadline(o),
      mergedNote(o),
      el("h3", { text: t("panel.actions") }),
      actionsBox(o),
      el("h3", { text: `${t("panel.alerts")} (${d.alerts.length})` }),
      el("ul", { class: "alerts" }, ...d.alerts.map((a) => el("li", {},
        el("div", {}, el("span", { class: `dot ${sevClass(a.severity)}` }), " ", labelEl("span", "severity", a.severity, { class: `sev sev-${a.severity}` }), " · ", labelEl("strong", "kind", a.kind), ` · ${a.subject} · ${CW.fmtTime(a.ts)}`),
        el("div", { class: "evidence-title", text: t("panel.evidence") }),
        el("table", { class: "evidence" }, ...Object.entries(a.evidence || {}).map(([k, v]) => el("tr", {}, labelEl("th", "ev", k), el("td", { text: CW.fmtValue(k, v, a.evidence) }))))))),
      el("h3", { text: t("panel.timeline") }),
      el("ol", { class: "timeline", id: "timeline" }, ...d.audit.map((e) => el("li", {},
        el("time", { text: CW.fmtTime(e.at || e.id.split("-")[0]) }), " ",
        labelEl("strong", "audit", e.action || ""), e.state ? ` → ${label("state", e.state)}` : "", e.by ? ` · ${e.by}` : "",
        ...Object.entries(e).filter(([k]) => !["id", "at", "action", "state", "by"].includes(k)).map(([k, v]) => el("div", { class: "sub" }, labelEl("span", "audit_field", k), `: ${["from", "order_state"].includes(k) ? label("state", v) : v}`))))),
    ].filter((c) => c != null));
    panel.dataset.wo = id;
    const field = (a, n) => panel.querySelector(`.actions [data-action="${CSS.escape(a)}"][name="${CSS.escape(n)}"]`);
    for (const [a, n, v] of kept) { const e = field(a, n); if (e) e.value = v; }
    if (refocus) { const e = field(...refocus); if (e) e.focus(); }
    panel.classList.remove("hidden");
    render();
    if (focus) panel.focus();
  }

  // A work order closed as merged into another (their incidents became one): say so and
  // open the surviving order on a click. Ids are shown as text.
  function mergedNote(o) {
    if (o.state !== "merged" || !o.merged_into) return null;
    return el("p", { class: "merged-note", id: "wo-merged-into" }, `${t("panel.merged_into")} `,
      el("button", { type: "button", class: "link", "data-wo": o.merged_into, text: o.merged_into, onclick: () => openOrder(o.merged_into, true) }));
  }

  function actionsBox(o) {
    const box = el("div", { class: "actions" });
    const msg = el("p", { class: "action-msg", id: "action-msg" });
    for (const a of meta.actions) {
      const [field, hint] = ACTION_FIELDS[a] || [];
      const input = field ? el(field === "minutes" ? "input" : "textarea", { name: field, "data-action": a, "aria-label": t(hint), placeholder: t(hint), ...(field === "minutes" ? { type: "number", min: "1", value: "60" } : {}) }) : null;
      const to = a === "return" && returnTo.length ? el("select", { name: "to_department", "data-action": a, "aria-label": t("panel.return_to") },
        el("option", { value: "", text: t("panel.return_to") }), ...returnTo.map((d) => el("option", { value: d, text: label("dept", d) }))) : null;
      const btn = el("button", { type: "button", class: `act act-${a}`, "data-action": a, text: t(`action.${a}`), onclick: async () => {
        const body = field ? { [field]: field === "minutes" ? Number(input.value) : input.value } : {};
        if (to && to.value) body.to_department = to.value;
        btn.disabled = true; msg.className = "action-msg";
        try {
          const r = await api(`/api/workorders/${encodeURIComponent(o.id)}/actions/${a}`, { method: "POST", body: JSON.stringify(body) });
          if (r.order) { orders.set(r.order.id, r.order); }
          if (input && field !== "minutes") input.value = "";  // done: not kept for the next one
          msg.textContent = `${t(`action.${a}`)}: ${t("action.done")}`;
          await openOrder(o.id);
          document.getElementById("action-msg").textContent = `${t(`action.${a}`)}: ${t("action.done")}`;
        } catch (e) { msg.className = "action-msg error"; msg.textContent = `${t("action.refused")}: ${e.message}`; btn.disabled = false; }
      } });
      box.append(el("div", { class: "action-row" }, btn, el("div", { class: "action-inputs" }, input, to)));
    }
    box.append(msg);
    return box;
  }

  function connect() {
    const live = document.getElementById("live");
    const es = new EventSource("/api/events");
    es.addEventListener("hello", () => { live.className = "live on"; live.textContent = t("live.connected"); live.dataset.i18n = "live.connected"; });
    es.addEventListener("wo", (ev) => { const wo = JSON.parse(ev.data); Attention.seen(wo, orders.get(wo.id)); orders.set(wo.id, wo); scheduleRender(); if (wo.id === selected) openOrder(wo.id); });
    es.addEventListener("gone", (ev) => { orders.delete(JSON.parse(ev.data).id); scheduleRender(); });
    es.addEventListener("expired", () => { es.close(); live.className = "live off"; live.textContent = t("live.expired"); setTimeout(() => { location.href = "/login"; }, 1500); });
    es.onerror = () => { live.className = "live off"; live.textContent = t("live.disconnected"); live.dataset.i18n = "live.disconnected"; };
  }
  let pending = false;
  function scheduleRender() { if (pending) return; pending = true; setTimeout(() => { pending = false; render(); }, 250); }

  meta = await api("/api/meta");
  for (const wo of (await api("/api/workorders")).orders) orders.set(wo.id, wo);
  Attention.setupControls();
  document.addEventListener("cw:open", (e) => openOrder(e.detail, true));
  fillFilters(); buildLayerControl(); render(); connect();
  document.getElementById("filters").addEventListener("change", render);
  document.addEventListener("cw:lang", () => { fillFilters(); buildLayerControl(); render(); if (selected) openOrder(selected); });
  setInterval(async () => { meta = await api("/api/meta"); fillFilters(); }, 30000);
})();
