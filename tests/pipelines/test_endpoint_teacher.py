"""The endpoint teacher against a live loopback /v1/chat/completions server started in the test."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cluster.config import ConfigError, parse_config
from pipelines.config import EndpointTeacherConfig
from pipelines.prompts.endpoint_teacher import EndpointTeacher, RateLimiter, cache_key, judge

GOOD_NORMAL = '<think>L1 "session opened" is routine.</think><answer>normal</answer>'
GOOD_ANOMALOUS = '<think>L1 "kernel panic" is a fault.</think><answer>anomalous</answer>'


class FakeEndpoint:
    """An OpenAI-compatible server: `answer(prompt_text, attempt)` returns (status, content) per request."""

    def __init__(self, answer: Callable[[str, int], tuple[int, str]], delay_s: float = 0.0):
        self.answer, self.delay_s = answer, delay_s
        self.requests: list[dict] = []
        self.attempts: dict[str, int] = {}
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                prompt = body["messages"][-1]["content"]
                with endpoint.lock:
                    endpoint.requests.append(body | {"path": self.path, "auth": self.headers.get("Authorization")})
                    attempt = endpoint.attempts[prompt] = endpoint.attempts.get(prompt, 0) + 1
                    endpoint.in_flight += 1
                    endpoint.max_in_flight = max(endpoint.max_in_flight, endpoint.in_flight)
                try:
                    time.sleep(endpoint.delay_s)
                    status, content = endpoint.answer(prompt, attempt)
                    payload = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
                    data = json.dumps(payload if status == 200 else {"error": content}).encode()
                    self.send_response(status)
                    if status == 429:
                        self.send_header("Retry-After", "0")
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with endpoint.lock:
                        endpoint.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def rows(n: int) -> list[dict]:
    return [
        {"prompt": f"L1: {'kernel panic' if i % 2 else 'session opened'} #{i}", "label": ("normal", "anomalous")[i % 2]}
        for i in range(n)
    ]


def right_answer(prompt: str, attempt: int) -> tuple[int, str]:
    return 200, GOOD_ANOMALOUS if "panic" in prompt else GOOD_NORMAL


def teacher(url: str, tmp_path: Path, **overrides) -> EndpointTeacher:
    settings = {"url": url, "model": "teacher-7b", "backoff_s": 0.01, "requests_per_second": 1000.0} | overrides
    return EndpointTeacher(EndpointTeacherConfig(**settings), tmp_path / "cache")


def test_answers_matching_the_label_are_kept_and_the_rest_counted_by_reason(tmp_path: Path):
    def answer(prompt: str, attempt: int) -> tuple[int, str]:
        number = int(prompt.rsplit("#", 1)[1])
        if number == 1:
            return 200, GOOD_NORMAL  # wrong verdict for an anomalous session
        if number == 2:
            return 200, "It looks fine to me."  # no format
        if number == 3:
            return 200, "<think>" + "x" * 80 + "</think><answer>anomalous</answer>"  # too long
        if number == 4:
            return 400, "bad request"  # not retried
        return right_answer(prompt, attempt)

    with FakeEndpoint(answer) as server:
        result = teacher(server.url, tmp_path, max_rationale_chars=50).teach(rows(8))
    assert result.references == [
        'L1 "session opened" is routine.',
        None,
        None,
        None,
        None,
        'L1 "kernel panic" is a fault.',
        'L1 "session opened" is routine.',
        'L1 "kernel panic" is a fault.',
    ]
    assert result.summary() == {
        "accepted": 4,
        "rejected": {
            "rationale too long": 1,
            "request failed: HTTP 400": 1,
            "unparseable answer": 1,
            "verdict does not match the label": 1,
        },
        "cached": 0,
        "requests": 8,
    }
    sent = server.requests[0]
    assert sent["path"] == "/v1/chat/completions" and sent["model"] == "teacher-7b"
    assert [m["role"] for m in sent["messages"]] == ["system", "user"] and sent["temperature"] == 0.0


def test_429_and_5xx_are_retried_with_backoff(tmp_path: Path):
    def answer(prompt: str, attempt: int) -> tuple[int, str]:
        if "#0" in prompt and attempt <= 2:
            return (429, 503)[attempt - 1], "busy"
        if "#1" in prompt:
            return 500, "always broken"
        return right_answer(prompt, attempt)

    slept: list[float] = []
    with FakeEndpoint(answer) as server:
        cfg = EndpointTeacherConfig(url=server.url, model="m", backoff_s=0.5, max_retries=3, requests_per_second=1000)
        result = EndpointTeacher(cfg, tmp_path / "cache", sleep=slept.append).teach(rows(3))
    assert result.references[0] is not None and result.references[2] is not None
    assert result.rejected == {"request failed: HTTP 500 after 4 attempts": 1}
    attempts = {prompt.rsplit("#", 1)[1]: count for prompt, count in server.attempts.items()}
    assert attempts == {"0": 3, "1": 4, "2": 1}
    # #0: Retry-After 0 after the 429, then 0.5 * 2 after the 503; #1: 0.5, 1, 2 (no sleep after the last try).
    assert sorted(slept) == sorted([0.0, 1.0, 0.5, 1.0, 2.0])
    assert result.requests == 3 + 4 + 1


def test_connection_errors_are_retried_then_counted(tmp_path: Path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    slept: list[float] = []
    cfg = EndpointTeacherConfig(url=f"http://127.0.0.1:{port}/v1", model="m", max_retries=2, backoff_s=0.25)
    result = EndpointTeacher(cfg, tmp_path / "cache", sleep=slept.append).teach(rows(1))
    assert result.references == [None]
    assert result.rejected == {"request failed: connection error after 3 attempts": 1}
    assert slept == [0.25, 0.5]


def test_concurrency_is_bounded(tmp_path: Path):
    with FakeEndpoint(right_answer, delay_s=0.15) as server:
        result = teacher(server.url, tmp_path, max_concurrency=3).teach(rows(12))
    assert result.summary()["accepted"] == 12
    assert server.max_in_flight == 3


def test_the_rate_limit_spaces_requests(tmp_path: Path):
    with FakeEndpoint(right_answer) as server:
        started = time.monotonic()
        teacher(server.url, tmp_path, max_concurrency=4, requests_per_second=20.0).teach(rows(10))
        elapsed = time.monotonic() - started
    assert elapsed >= 9 / 20 - 0.01  # 10 evenly spaced starts span 9 intervals


def test_rate_limiter_schedules_evenly():
    now = [100.0]
    slept: list[float] = []
    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=slept.append)
    for _ in range(3):
        limiter.wait()
    assert slept == [0.25, 0.5]


def test_cached_answers_are_not_asked_again_and_the_key_covers_model_and_prompt(tmp_path: Path):
    with FakeEndpoint(right_answer) as server:
        first = teacher(server.url, tmp_path).teach(rows(4))
        again = teacher(server.url, tmp_path).teach(rows(4))
        other_model = teacher(server.url, tmp_path, model="other").teach(rows(4))
    assert again.references == first.references
    assert (first.cached, again.cached, other_model.cached) == (0, 4, 0)
    assert (again.requests, len(server.requests)) == (0, 8)
    messages = [{"role": "user", "content": "x"}]
    assert cache_key("a", messages, 1, 0.0) != cache_key("b", messages, 1, 0.0)
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 8


def test_api_key_comes_from_the_named_environment_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEACHER_KEY", "sk-test")
    with FakeEndpoint(right_answer) as server:
        teacher(server.url, tmp_path, api_key_env="TEACHER_KEY").teach(rows(1))
    assert server.requests[0]["auth"] == "Bearer sk-test"


def test_judge():
    assert judge(GOOD_NORMAL, "normal", 100) == ('L1 "session opened" is routine.', "")
    assert judge("<answer>normal</answer>", "normal", 100) == (None, "empty rationale")


@pytest.mark.parametrize(
    ("teacher_cfg", "message"),
    [
        ({"kind": "endpoint"}, r"data.teacher: endpoint: required for kind endpoint"),
        ({"kind": "rlog"}, r"data.teacher: rlog_paths: required for kind rlog"),
        ({"kind": "llm"}, r"data.teacher.kind: Input should be 'rule', 'domain', 'endpoint' or 'rlog'"),
        (
            {"kind": "endpoint", "endpoint": {"url": "localhost:8000", "model": "m"}},
            r"data.teacher.endpoint.url: .*must start with http:// or https://",
        ),
        (
            {"kind": "endpoint", "endpoint": {"url": "http://h/v1", "model": "m", "max_concurrency": 0}},
            r"data.teacher.endpoint.max_concurrency: Input should be greater than or equal to 1",
        ),
        ({"kind": "rlog", "rlog_paths": ["r.json"]}, r"data.teacher.kind rlog .* needs format"),
    ],
)
def test_teacher_config_errors_name_the_field(teacher_cfg: dict, message: str):
    with pytest.raises(ConfigError, match=message):
        parse_config({"data": {"paths": ["x.log"], "teacher": teacher_cfg}, "model": {"path": "m"}})
