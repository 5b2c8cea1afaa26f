"""Password hashing, scopes, users and sessions in a real Redis."""

from __future__ import annotations

import time

import orjson
import pytest
import redis

from citywatch.console.auth import AuthError, User, UserStore, hash_password, verify_password
from citywatch.console.settings import ConsoleSettings, ConsoleSettingsError

pytestmark = pytest.mark.redis


def test_password_hash_is_salted_and_verifies() -> None:
    a, b = hash_password("s3cret"), hash_password("s3cret")
    assert a != b and a.startswith("scrypt$")
    assert "s3cret" not in a
    assert verify_password("s3cret", a) and verify_password("s3cret", b)
    assert not verify_password("s3cret ", a)
    assert not verify_password("s3cret", "md5$abc")


@pytest.mark.parametrize(
    ("user", "centre", "dept", "visible"),
    [
        (User(name="a", centre="county:rugao", department="fish"), "county:rugao", "fish", True),
        (User(name="a", centre="county:rugao", department="fish"), "county:rugao", "water", False),
        (User(name="a", centre="county:rugao", department="fish"), "county:qidong", "fish", False),
        (User(name="a", department="fish"), "county:qidong", "fish", True),
        (User(name="a", centre="city"), "city", "water", True),
        (User(name="boss", role="leader"), "county:qidong", "water", True),
    ],
    ids=["own", "other-dept", "other-centre", "any-centre", "any-dept", "leader"],
)
def test_scope(user: User, centre: str, dept: str, visible: bool) -> None:
    assert user.may_see(centre, dept) is visible


def test_officer_needs_a_scope() -> None:
    with pytest.raises(AuthError, match="needs a centre or a department"):
        User(name="x")
    with pytest.raises(AuthError, match="role must be one of"):
        User(name="x", role="admin", centre="city")
    with pytest.raises(AuthError, match="user name"):
        User(name="a b", centre="city")


def test_users_are_stored_hashed(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = UserStore(client, "cw")
    store.add(User(name="fish", centre="county:rugao", department="agri"), "pw-1")
    with pytest.raises(AuthError, match="exists already"):
        store.add(User(name="fish", centre="city", department="x"), "pw-2")
    raw = orjson.loads(client.hget("{cw}:console:{users}", "fish"))  # type: ignore[arg-type]
    assert raw["password"].startswith("scrypt$") and "pw-1" not in raw["password"]
    assert store.authenticate("fish", "pw-1") == store.get("fish")
    assert store.authenticate("fish", "pw-2") is None
    assert store.authenticate("nobody", "pw-1") is None
    assert [u.name for u in store.list()] == ["fish"]
    assert store.remove("fish") and store.get("fish") is None


def test_session_token_is_not_stored_and_idle_sessions_expire(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = UserStore(client, "cw", idle_s=1, max_s=60)
    user = User(name="fish", centre="county:rugao", department="agri")
    store.add(user, "pw")
    token, csrf = store.open_session(user)
    assert store.session(token) == (user, csrf)
    keys = [k.decode() for k in client.keys("{cw}:console:session:*")]
    assert len(keys) == 1 and token not in keys[0]
    assert store.session("forged-token") is None
    time.sleep(1.3)  # Redis drops the key after the 1 s idle TTL
    assert store.session(token) is None


def test_sessions_end_at_their_maximum_age_and_with_their_user(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    store = UserStore(client, "cw", idle_s=60, max_s=3600)
    user = User(name="fish", centre="county:rugao", department="agri")
    store.add(user, "pw")
    token, _ = store.open_session(user)
    key = client.keys("{cw}:console:session:*")[0]
    doc = orjson.loads(client.get(key))  # type: ignore[arg-type]
    doc["created_ms"] -= 3_601_000  # signed in just over an hour ago
    client.set(key, orjson.dumps(doc), ex=60)
    assert store.session(token) is None
    token, _ = store.open_session(user)
    store.remove("fish")
    assert store.session(token) is None


def test_settings_validate() -> None:
    assert ConsoleSettings.from_table({}).port == 8765
    with pytest.raises(ConsoleSettingsError, match="unknown setting"):
        ConsoleSettings.from_table({"prot": 1})
    with pytest.raises(ConsoleSettingsError, match="must not exceed"):
        ConsoleSettings(session_idle_s=100, session_max_s=10)


def test_users_passwd_resets_the_password_and_ends_sessions(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from citywatch.flows.cli import main

    store = UserStore(redis.Redis.from_url(redis_url), "cw")
    user = User(name="fish", centre="county:rugao", department="agri")
    store.add(user, "old-pw")
    token, _ = store.open_session(user)
    monkeypatch.setenv("CITYWATCH_REDIS_URL", redis_url)
    monkeypatch.setattr("sys.stdin", io.StringIO("new-pw\n"))
    assert main(["console", "users", "passwd", "fish"]) == 0
    assert "sessions have ended" in capsys.readouterr().out
    assert store.session(token) is None
    assert store.authenticate("fish", "new-pw") == user
    monkeypatch.setattr("sys.stdin", io.StringIO("x\n"))
    assert main(["console", "users", "passwd", "nobody"]) == 1
    assert "no user 'nobody'" in capsys.readouterr().err
