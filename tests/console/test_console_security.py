"""Response headers, cookies and the static files' session check."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from citywatch.console.web import SESSION_COOKIE

pytestmark = pytest.mark.redis

SignIn = Callable[[TestClient, str, str], str]


def assert_hardened(r: object, what: str) -> None:
    headers = r.headers  # type: ignore[attr-defined]
    csp = headers.get("content-security-policy", "")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";") if d.strip())
    assert directives.get("default-src") == "'self'", (what, csp)
    assert directives.get("script-src") == "'self'", (what, csp)
    assert directives.get("style-src") == "'self'", (what, csp)
    assert directives.get("frame-ancestors") == "'none'", (what, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (what, csp)
    assert headers.get("x-frame-options") == "DENY", what
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("referrer-policy") == "same-origin", what


def test_every_response_is_hardened(
    make_client: Callable[..., TestClient], sign_in: SignIn
) -> None:
    client = make_client()
    anonymous = {
        "/login": 200,
        "/static/console.css": 200,
        "/static/login.js": 200,
        "/static/i18n/zh.json": 200,
        "/": 303,
        "/api/me": 401,
        "/static/map.js": 401,
        "/static/vendor/leaflet/leaflet.js": 401,
        "/static/no-such-file.js": 401,
        "/no-such-page": 404,
    }
    for path, status in anonymous.items():
        r = client.get(path, follow_redirects=False)
        assert r.status_code == status, (path, r.status_code)
        assert_hardened(r, path)
    sign_in(client, "fish", "fish-pw")
    for path in ("/", "/static/map.js", "/static/vendor/leaflet/leaflet.js", "/api/meta"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert_hardened(r, path)
    assert client.get("/static/no-such-file.js").status_code == 404


def cookie_flags(r: object, name: str) -> set[str]:
    """The attributes of cookie ``name`` in a response, lower-cased (``samesite=strict``)."""
    for value in r.headers.get_list("set-cookie"):  # type: ignore[attr-defined]
        if value.startswith(name + "="):
            return {p.strip().lower() for p in value.split(";")[1:]}
    raise AssertionError(f"no {name} cookie set")


def login_response(client: TestClient) -> object:
    client.get("/login")
    return client.post(
        "/api/login",
        json={"username": "fish", "password": "fish-pw"},
        headers={"X-CSRF-Token": client.cookies["cw_login_csrf"]},
    )


def test_session_cookie_is_httponly_strict_and_secure_over_tls(
    make_client: Callable[..., TestClient],
) -> None:
    plain = cookie_flags(login_response(make_client()), SESSION_COOKIE)
    assert {"httponly", "samesite=strict"} <= plain and "secure" not in plain
    tls = cookie_flags(login_response(make_client(base_url="https://console.test")), SESSION_COOKIE)
    assert {"httponly", "samesite=strict", "secure"} <= tls
