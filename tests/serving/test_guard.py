"""The replica guard without Ray: route allowlist, API keys, body cap, default model, no paths, queue, timeout."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.auth import digest
from serving.guard import DetectorGuard, GuardSettings, RequestRefused, _read_body, public_model_list

KEY = "s3cret-key"
ERROR_KEYS = {"message", "type", "param", "code"}


def _settings(**overrides) -> GuardSettings:
    values = dict(
        key_digests=frozenset({digest(KEY), digest("other")}),
        max_request_bytes=1024,
        max_ongoing_requests=2,
        max_queued_requests=2,
        request_timeout_s=5,
        adapter_name="logrl-detector",
    )
    return GuardSettings(**{**values, **overrides})


def _inner_app(seen: list) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        seen.append(json.loads(body) if body else None)
        return JSONResponse({"ok": True})

    async def models(request: Request) -> JSONResponse:
        cards = [
            {"id": "model", "root": "runs/quickstart/model", "parent": None},  # a relative folder is a path too
            {"id": "logrl-detector", "root": "/home/me/runs/adapters/v3", "parent": "model"},
        ]
        return JSONResponse({"object": "list", "data": cards})

    async def fastapi_style_error(request: Request) -> JSONResponse:  # what vLLM's FastAPI app answers itself
        return JSONResponse({"detail": "There was an error parsing the body"}, status_code=400)

    routes = [Route(path, echo, methods=["POST"]) for path in ("/detect", "/v1/chat/completions", "/docs")]
    routes += [Route("/v1/completions", fastapi_style_error, methods=["POST"])]
    routes += [Route("/admin/adapters", echo, methods=["POST"])]
    routes += [Route("/v1/models", models), Route("/metrics", models), Route("/health", lambda r: JSONResponse({}))]
    return Starlette(routes=routes)


def _client(seen: list, **overrides) -> TestClient:
    return TestClient(DetectorGuard(_inner_app(seen), _settings(**overrides)))


def _assert_error(response, status: int, fragment: str) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == ERROR_KEYS and error["code"] == status and fragment in error["message"]


def test_auth_required_with_openai_error_shape_and_a_key_opens_it():
    seen: list = []
    client = _client(seen)
    _assert_error(client.post("/detect", json={"lines": ["x"]}), 401, "missing or invalid API key")
    _assert_error(client.post("/detect", json={"lines": ["x"]}, headers={"Authorization": "Bearer no"}), 401, "API")
    _assert_error(client.get("/v1/models"), 401, "API key")
    assert seen == []
    ok = client.post("/detect", json={"lines": ["x"]}, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200 and seen == [{"lines": ["x"]}]
    assert client.get("/v1/models", headers={"Authorization": "Bearer other"}).status_code == 200
    assert client.get("/health").status_code == 200  # liveness stays open, it says nothing else


@pytest.mark.parametrize("path", ["/docs", "/metrics", "/openapi.json", "/scale_elastic_ep", "/v1/load_lora_adapter"])
def test_operational_routes_are_closed_even_with_a_key(path):
    client = _client([])
    _assert_error(client.post(path, headers={"Authorization": f"Bearer {KEY}"}), 404, f"no route {path}")
    _assert_error(client.get(path), 404, "no route")


def test_admin_needs_an_admin_key_not_an_api_key_and_is_off_without_one():
    seen: list = []
    admin = "admin-key"
    closed = _client(seen)  # auth on, no admin key configured
    _assert_error(closed.post("/admin/adapters", json={}, headers={"Authorization": f"Bearer {KEY}"}), 403, "off")
    guarded = _client(seen, admin_key_digests=frozenset({digest(admin)}))
    _assert_error(guarded.post("/admin/adapters", json={}, headers={"Authorization": f"Bearer {KEY}"}), 401, "admin")
    _assert_error(guarded.post("/admin/adapters", json={}), 401, "admin key")
    assert seen == []
    ok = guarded.post("/admin/adapters", json={"version": "v2"}, headers={"Authorization": f"Bearer {admin}"})
    assert ok.status_code == 200 and seen == [{"version": "v2"}]
    local = _client(seen, key_digests=frozenset(), admin_key_digests=None)  # serve.auth: disabled, loopback only
    assert local.post("/admin/adapters", json={"version": "v3"}).status_code == 200


def test_models_list_shows_names_not_paths():
    body = _client([], key_digests=frozenset()).get("/v1/models").json()
    assert [card["root"] for card in body["data"]] == ["model", "logrl-detector"]
    assert "/home" not in json.dumps(body)
    assert public_model_list({"data": [{"id": "a", "root": "org/hf-model", "parent": "org/hf-model"}]}) == {
        "data": [{"id": "a", "root": "a", "parent": "org/hf-model"}]  # an HF id names no folder here
    }


def test_a_request_naming_no_model_gets_the_adapter_or_a_400():
    seen: list = []
    client = _client(seen, key_digests=frozenset())
    messages = [{"role": "user", "content": "hi"}]
    assert client.post("/v1/chat/completions", json={"messages": messages}).status_code == 200
    assert client.post("/v1/chat/completions", json={"model": "model", "messages": messages}).status_code == 200
    assert [body["model"] for body in seen] == ["logrl-detector", "model"]
    assert all(body["priority"] == 1 and body["max_completion_tokens"] == 512 for body in seen)  # capped, bulk
    strict = _client(seen, key_digests=frozenset(), default_model="reject")
    _assert_error(strict.post("/v1/chat/completions", json={"messages": messages}), 400, "model is required")


def test_v1_caps_are_400s_naming_the_field_and_the_body_must_be_utf8_json():
    seen: list = []
    client = _client(seen, key_digests=frozenset())
    messages = [{"role": "user", "content": "hi"}]
    starving = {"messages": messages, "n": 256, "max_tokens": 760, "ignore_eos": True}
    response = client.post("/v1/chat/completions", json=starving)
    _assert_error(response, 400, "this server allows at most 1 completion per request")
    assert response.json()["error"]["param"] == "n"
    headers = {"content-type": "application/json"}
    _assert_error(client.post("/v1/chat/completions", content=b'{"messages": ', headers=headers), 400, "not valid JSON")
    invalid_utf8 = b'{"messages": [{"role": "user", "content": "\xff"}]}'  # a byte no UTF-8 text has
    _assert_error(client.post("/v1/chat/completions", content=invalid_utf8, headers=headers), 422, "UTF-8")
    _assert_error(client.post("/v1/chat/completions", json=["not", "an", "object"]), 400, "JSON object")
    assert seen == []


def test_a_wrong_method_and_fastapi_errors_come_back_in_the_openai_shape():
    client = _client([], key_digests=frozenset())
    response = client.get("/detect")
    _assert_error(response, 405, "GET is not allowed on /detect; use POST")
    assert response.headers["allow"] == "POST"
    _assert_error(client.post("/v1/models"), 405, "use GET")
    rewritten = client.post("/v1/completions", json={"prompt": "x"})  # the inner app answers {"detail": ...}
    _assert_error(rewritten, 400, "There was an error parsing the body")
    assert rewritten.headers["content-type"] == "application/json"


def test_each_key_has_a_token_budget_and_a_429_says_when_to_return():
    seen: list = []
    other = "other"
    client = _client(seen, tokens_per_minute_per_key=700.0)
    messages = [{"role": "user", "content": "hi"}]
    mine = {"Authorization": f"Bearer {KEY}"}
    assert client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 500}, headers=mine)
    refused = client.post("/v1/chat/completions", json={"messages": messages, "max_tokens": 400}, headers=mine)
    _assert_error(refused, 429, "token budget is spent: this request may generate 400 tokens")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    theirs = client.post(
        "/v1/chat/completions",
        json={"messages": messages, "max_tokens": 400},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert theirs.status_code == 200 and len(seen) == 2
    assert client.post("/detect", json={"lines": ["x"]}, headers=mine).status_code == 200  # /detect is not charged


def test_json_nested_past_the_parser_limit_is_a_400_not_a_500():
    seen: list = []
    client = _client(seen, key_digests=frozenset(), max_request_bytes=20_000)
    deep = b"[" * 5000 + b"]" * 5000
    headers = {"content-type": "application/json"}
    _assert_error(client.post("/v1/chat/completions", content=deep, headers=headers), 400, "nested too deeply")
    assert seen == []


def test_a_big_body_is_refused_before_it_is_read():
    seen: list = []
    client = _client(seen, key_digests=frozenset())
    _assert_error(client.post("/detect", content=b"x" * 2000), 413, "over the limit of 1024 bytes")
    _assert_error(client.post("/detect", content=b"{}", headers={"content-length": "99999999"}), 413, "limit")
    assert seen == []


def test_a_streamed_body_is_cut_at_the_limit():
    chunks = [{"type": "http.request", "body": b"x" * 600, "more_body": True}] * 3
    read: list = []

    async def receive():
        read.append(1)
        return chunks[len(read) - 1]

    with pytest.raises(RequestRefused) as err:
        asyncio.run(_read_body(receive, {}, 1024))
    assert err.value.status_code == 413 and len(read) == 2  # stopped at the chunk that crossed the limit


async def _call(guard: DetectorGuard, path: str, body: bytes = b'{"lines": ["x"]}') -> tuple[int, dict, dict]:
    sent: list = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": path, "headers": [], "query_string": b""}
    await guard(scope, receive, send)
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    headers = {name.decode(): value.decode() for name, value in sent[0]["headers"]}
    return sent[0]["status"], json.loads(answer), headers


def test_a_full_queue_is_429_and_a_slow_detect_is_504():
    release = asyncio.Event()

    async def slow_app(scope, receive, send):
        await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def scenario():
        guard = DetectorGuard(
            slow_app,
            _settings(
                key_digests=frozenset(),
                max_ongoing_requests=1,
                max_ongoing_bulk_requests=0,
                max_queued_requests=1,
                request_timeout_s=0.5,
            ),
        )
        first = asyncio.create_task(_call(guard, "/detect"))
        queued = asyncio.create_task(_call(guard, "/detect"))
        await asyncio.sleep(0.05)
        rejected = await _call(guard, "/detect")
        results = await asyncio.gather(first, queued)
        release.set()
        after = await _call(guard, "/detect")
        return rejected, results, after

    (status, body, headers), [(first, _, _), (queued, queued_body, _)], after = asyncio.run(scenario())
    assert status == 429 and set(body["error"]) == ERROR_KEYS and "queue is full" in body["error"]["message"]
    assert int(headers["retry-after"]) >= 1 and headers["content-type"] == "application/json"
    assert first == 504 and queued in (503, 504) and "0.5s" in queued_body["error"]["message"]
    assert after[0] == 200  # slots were released: the replica answers normally afterwards


def test_bulk_v1_work_never_holds_the_slots_detect_needs():
    release = asyncio.Event()

    async def app(scope, receive, send):
        if scope["path"] != "/detect":
            await release.wait()  # long /v1 generations
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def scenario():
        settings = _settings(key_digests=frozenset(), max_ongoing_requests=1, max_ongoing_bulk_requests=1)
        guard = DetectorGuard(app, settings)
        chat = b'{"messages": [{"role": "user", "content": "hi"}]}'
        bulk = [asyncio.create_task(_call(guard, "/v1/chat/completions", chat)) for _ in range(2)]
        await asyncio.sleep(0.05)  # one generation runs, one waits for the single bulk slot
        detected = await asyncio.wait_for(_call(guard, "/detect"), 2)
        release.set()
        return detected, await asyncio.gather(*bulk)

    detected, bulk = asyncio.run(scenario())
    assert detected[0] == 200 and [status for status, _, _ in bulk] == [200, 200]


def test_websockets_are_refused():
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect) as err, _client([]).websocket_connect("/v1/realtime"):
        pass
    assert err.value.code == 1008
