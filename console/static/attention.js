// Calling the officer: a new red or orange work order in their scope chimes (unless muted),
// raises a browser notification (when permitted), flashes the tab title with the count not
// yet signed off, and stays highlighted in the list until signed off.
"use strict";
const Attention = (() => {
  const URGENT = ["red", "orange"];
  const UNSIGNED = ["dispatched", "escalated", "returned"];
  const chime = new Audio("/static/chime.wav");
  chime.preload = "auto";
  let muted = localStorage.getItem("cw.mute") === "1";
  let waiting = 0;
  let flashing = null;
  let lit = false;

  function urgent(wo) { return !!wo && URGENT.includes(wo.severity) && UNSIGNED.includes(wo.state); }

  function announce(wo) {
    if (!muted) { chime.currentTime = 0; chime.play().catch(() => {}); }
    if ("Notification" in window && Notification.permission === "granted") {
      const n = new Notification(CW.t("attn.new", { sev: CW.label("severity", wo.severity) }),
        { body: `${CW.label("kind", wo.kind)} · ${wo.subject}`, tag: wo.id });
      n.onclick = () => { window.focus(); document.dispatchEvent(new CustomEvent("cw:open", { detail: wo.id })); };
    }
  }

  // A work order arrived or changed: call for attention when it has just become urgent.
  function seen(wo, before) { if (urgent(wo) && !urgent(before)) announce(wo); }

  function title() { return waiting && lit ? `(${waiting}) ${CW.t("attn.unsigned", { n: waiting })}` : CW.t("app.title"); }

  // The orders in scope changed: recount those waiting for sign-off, flash while any do.
  function count(orders) {
    waiting = [...orders].filter(urgent).length;
    if (waiting && !flashing) flashing = setInterval(() => { lit = !lit; document.title = title(); }, 1000);
    if (!waiting && flashing) { clearInterval(flashing); flashing = null; lit = false; }
    document.title = title();
  }

  function setupControls() {
    const mute = document.getElementById("mute");
    const show = () => { mute.textContent = CW.t(muted ? "attn.muted" : "attn.mute"); mute.setAttribute("aria-pressed", String(muted)); };
    mute.addEventListener("click", () => { muted = !muted; localStorage.setItem("cw.mute", muted ? "1" : "0"); show(); });
    document.addEventListener("cw:lang", show);
    show();
    const notify = document.getElementById("notify");
    if ("Notification" in window && Notification.permission === "default") {
      notify.hidden = false;
      notify.addEventListener("click", async () => { await Notification.requestPermission(); notify.hidden = Notification.permission !== "default"; });
    }
  }

  return { urgent, seen, count, setupControls };
})();
