"""Sign-in under attack: failed attempts slowed per user and per address, a bounded
hashing pool, and a new password ending the user's other sessions."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest
from starlette.testclient import TestClient

from citywatch.console.auth import User, UserStore
from citywatch.console.web import LOGIN_CSRF_COOKIE

pytestmark = pytest.mark.redis

MakeClient = Callable[..., TestClient]
SignIn = Callable[[TestClient, str, str], str]
SLOW = {"login_free_failures": 2, "login_delay_s": 60.0}


def attempt(client: TestClient, name: str, password: str) -> httpx.Response:
    client.get("/login")
    return client.post(
        "/api/login",
        json={"username": name, "password": password},
        headers={"X-CSRF-Token": client.cookies[LOGIN_CSRF_COOKIE]},
    )


def test_failed_sign_ins_are_slowed_per_user_and_per_address(make_client: MakeClient) -> None:
    a = make_client(addr="10.0.0.1", **SLOW)
    assert [attempt(a, "fish", "guess").status_code for _ in range(3)] == [401, 401, 401]
    # The user is held back from any address, before the password is even checked ...
    b = make_client(addr="10.0.0.2", **SLOW)
    r = attempt(b, "fish", "fish-pw")
    assert r.status_code == 429 and "try again in" in r.json()["error"]
    assert 0 < int(r.headers["retry-after"]) <= 60
    # ... and so is the address, for any user; others sign in as usual.
    assert attempt(b, "air", "air-pw").status_code == 200
    assert attempt(a, "air", "air-pw").status_code == 429


def test_a_successful_sign_in_clears_the_users_count(make_client: MakeClient) -> None:
    c = make_client(addr="10.0.0.3", **SLOW)
    assert attempt(c, "lead", "guess").status_code == 401
    assert attempt(c, "lead", "lead-pw").status_code == 200
    d = make_client(addr="10.0.0.4", **SLOW)
    assert [attempt(d, "lead", "guess").status_code for _ in range(2)] == [401, 401]
    assert attempt(d, "lead", "lead-pw").status_code == 200


def test_a_full_hashing_pool_refuses_at_once_and_signed_in_officers_go_on(
    make_client: MakeClient, sign_in: SignIn
) -> None:
    client = make_client(hash_workers=1, hash_queue=1)
    sign_in(client, "fish", "fish-pw")
    pool = client.app.state.console.hasher  # type: ignore[attr-defined]
    release = threading.Event()
    busy = [pool.submit(release.wait), pool.submit(release.wait)]  # the thread and the queue
    try:
        r = attempt(client, "lead", "lead-pw")
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        assert client.get("/api/me").json()["user"]["name"] == "fish"  # no wait for hashing
    finally:
        release.set()
    for f in busy:
        f.result(timeout=30)
    assert attempt(client, "lead", "lead-pw").status_code == 200


def test_a_new_password_ends_the_users_other_sessions(
    make_client: MakeClient, sign_in: SignIn, users: UserStore
) -> None:
    here, elsewhere = make_client(), make_client()
    csrf = sign_in(here, "fish", "fish-pw")
    sign_in(elsewhere, "fish", "fish-pw")
    url, headers = "/api/password", {"X-CSRF-Token": csrf}
    r = here.post(url, json={"current": "nope", "new": "new-password"}, headers=headers)
    assert r.status_code == 403
    assert (
        here.post(url, json={"current": "fish-pw", "new": "short"}, headers=headers).status_code
        == 422
    )
    assert elsewhere.get("/api/me").status_code == 200  # nothing changed yet
    r = here.post(url, json={"current": "fish-pw", "new": "new-password"}, headers=headers)
    assert r.status_code == 200, r.text
    assert here.get("/api/me").status_code == 200
    assert elsewhere.get("/api/me").status_code == 401
    assert attempt(elsewhere, "fish", "fish-pw").status_code == 401
    sign_in(elsewhere, "fish", "new-password")
    # A reset (citywatch console users passwd) or a replaced user ends every session.
    users.set_password("fish", "reset-password")
    assert here.get("/api/me").status_code == 401
    assert elsewhere.get("/api/me").status_code == 401
    sign_in(here, "fish", "reset-password")
    users.add(User(name="fish", centre="county:rugao", department="x"), "pw", replace=True)
    assert here.get("/api/me").status_code == 401
