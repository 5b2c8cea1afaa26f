"""``citywatch webhooks add|list|test|remove`` against a real Redis and a real receiver."""

from __future__ import annotations

import orjson
import pytest
from pytest_httpserver import HTTPServer
from standardwebhooks import Webhook
from werkzeug import Request, Response

from citywatch.flows.cli import main

pytestmark = pytest.mark.redis


def test_add_list_test_remove(
    redis_url: str, httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    got: list[dict[str, object]] = []
    secret: list[str] = []

    def receive(request: Request) -> Response:
        got.append(Webhook(secret[0]).verify(request.get_data(), dict(request.headers)))
        return Response("", status=200)

    httpserver.expect_request("/hook").respond_with_handler(receive)
    url = httpserver.url_for("/hook") + "?key=private"
    r = ["--redis-url", redis_url]
    assert main(["webhooks", "add", *r, "water", url, "--event", "workorder.closed"]) == 0
    out = capsys.readouterr().out
    secret.append(out.split("secret (shown once; give it to the receiver): ")[1].strip())
    assert secret[0].startswith("whsec_")

    assert main(["webhooks", "list", *r]) == 0
    listed = capsys.readouterr().out
    assert "water" in listed and "events=workorder.closed" in listed
    assert "private" not in listed and secret[0] not in listed
    assert main(["webhooks", "list", *r, "--json"]) == 0
    (row,) = orjson.loads(capsys.readouterr().out)
    assert row["url"].endswith("/hook?…") and "secret" not in row and row["backlog"] == 0

    assert main(["webhooks", "test", *r, "water"]) == 0
    assert "HTTP 200" in capsys.readouterr().out
    assert got == [{"type": "webhook.test", "timestamp": got[0]["timestamp"],
                    "data": {"subscription": "water"}}]  # fmt: skip

    assert main(["webhooks", "remove", *r, "water"]) == 0
    assert main(["webhooks", "remove", *r, "water"]) == 1
    assert main(["webhooks", "test", *r, "water"]) == 2
    assert "no webhook subscription 'water'" in capsys.readouterr().err
