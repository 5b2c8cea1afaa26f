// Change one's own password; the other sessions of this user end, this one stays.
"use strict";
(async () => {
  await CW.start();
  document.getElementById("password-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const msg = document.getElementById("password-msg");
    const val = (id) => document.getElementById(id).value;
    msg.className = "error";
    if (val("new") !== val("again")) { msg.textContent = CW.t("password.differ"); return; }
    try {
      await CW.api("/api/password", { method: "POST", body: JSON.stringify({ current: val("current"), new: val("new") }) });
      msg.className = "ok"; msg.textContent = CW.t("password.done");
      ev.target.reset();
    } catch (e) { msg.textContent = `${CW.t("password.failed")}: ${e.message}`; }
  });
})();
