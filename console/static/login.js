"use strict";
(async () => {
  await CW.loadLang(CW.state.lang);
  document.getElementById("lang-switch").addEventListener("click", () => CW.loadLang(CW.state.lang === "zh" ? "en" : "zh"));
  // Sign-in CSRF: double submit. The server set a random cookie with the page; only a script
  // of this origin can read it and echo it in the header.
  document.getElementById("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = document.getElementById("login-error");
    err.textContent = "";
    try {
      const r = await fetch("/api/login", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": await loginToken() },
        body: JSON.stringify({ username: document.getElementById("username").value, password: document.getElementById("password").value }),
      });
      const body = await r.json().catch(() => ({}));
      if (!r.ok) throw new Error(body.error || r.statusText);
      location.href = "/";
    } catch (e) {
      err.textContent = `${CW.t("login.failed")}: ${e.message}`;
    }
  });
  async function loginToken() {
    const m = document.cookie.match(/(?:^|; )cw_login_csrf=([^;]*)/);
    return m ? decodeURIComponent(m[1]) : "";
  }
})();
