"""An OpenAI-compatible chat endpoint as CoT teacher: bounded concurrency, a rate limit, retries, an answer cache.

Each train prompt is sent as the student will see it (same system prompt and rendering). An answer is kept only
when it parses in the `<think>…</think><answer>…</answer>` format and its verdict matches the session's label;
everything else is counted by reason, and the row keeps the rule teacher's rationale.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from contract.completion_format import parse_completion
from pipelines.config import EndpointTeacherConfig
from pipelines.prompts.render import build_messages
from pipelines.prompts.teacher import TeachResult

RETRY_STATUS = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 60.0


class RequestFailed(RuntimeError):
    """The endpoint gave no usable answer after the allowed retries; `reason` is counted."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RateLimiter:
    """At most `per_second` starts per second over all threads (evenly spaced, no bursts)."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic, sleep=time.sleep):
        self.interval, self.clock, self.sleep = 1.0 / per_second, clock, sleep
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        with self.lock:
            now = self.clock()
            start = max(now, self.next_at)
            self.next_at = start + self.interval
        if start > now:
            self.sleep(start - now)


def cache_key(model: str, messages: list[dict], max_tokens: int, temperature: float) -> str:
    payload = json.dumps([model, messages, max_tokens, temperature], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


def judge(content: str, label: str, max_chars: int) -> tuple[str | None, str]:
    """(rationale, "") for an answer the SFT set can use, else (None, why not)."""
    parsed = parse_completion(content)
    if not parsed.well_formed:
        return None, "unparseable answer"
    if parsed.verdict != label:
        return None, "verdict does not match the label"
    if not parsed.rationale:
        return None, "empty rationale"
    if len(parsed.rationale) > max_chars:
        return None, "rationale too long"
    return parsed.rationale, ""


class EndpointTeacher:
    """Asks an OpenAI-compatible `/chat/completions` endpoint to explain each row's session."""

    name = "endpoint"

    def __init__(
        self,
        cfg: EndpointTeacherConfig,
        cache_dir: str | Path,
        sleep: Callable[[float], None] = time.sleep,
        data_format: str | None = None,
    ):
        self.cfg, self.sleep, self.data_format = cfg, sleep, data_format
        self.cache_dir = Path(cache_dir)
        self.limiter = RateLimiter(cfg.requests_per_second)  # `sleep` is the retry backoff's (tests record it)
        self.lock = threading.Lock()
        self.requests = 0
        key = os.environ.get(cfg.api_key_env, "") if cfg.api_key_env else ""
        self.headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {key}"} if key else {})

    def _cached(self, key: str) -> str | None:
        path = self.cache_dir / key[:2] / f"{key}.json"
        return json.loads(path.read_text())["content"] if path.exists() else None

    def _store(self, key: str, content: str) -> None:
        path = self.cache_dir / key[:2] / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps({"content": content}))
        tmp.replace(path)  # atomic: a crash never leaves half an answer in the cache

    def _post(self, body: bytes) -> str:
        request = urllib.request.Request(f"{self.cfg.url}/chat/completions", body, self.headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.cfg.timeout_s) as response:
            payload = json.loads(response.read())
        try:
            return payload["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise RequestFailed("response without choices[0].message.content") from None

    def complete(self, messages: list[dict]) -> tuple[str, bool]:
        """The answer text and whether it came from the cache; RequestFailed after the retries."""
        cfg = self.cfg
        key = cache_key(cfg.model, messages, cfg.max_tokens, cfg.temperature)
        cached = self._cached(key)
        if cached is not None:
            return cached, True
        body = json.dumps(
            {"model": cfg.model, "messages": messages, "max_tokens": cfg.max_tokens, "temperature": cfg.temperature}
        ).encode()
        for attempt in range(cfg.max_retries + 1):
            self.limiter.wait()
            with self.lock:
                self.requests += 1
            delay = cfg.backoff_s * 2**attempt
            try:
                content = self._post(body)
            except urllib.error.HTTPError as err:
                if err.code not in RETRY_STATUS:
                    raise RequestFailed(f"HTTP {err.code}") from None
                reason = f"HTTP {err.code}"
                retry_after = err.headers.get("Retry-After", "") if err.headers else ""
                if retry_after.replace(".", "", 1).isdigit():
                    delay = min(float(retry_after), MAX_RETRY_AFTER_S)
            except (urllib.error.URLError, ConnectionError, TimeoutError) as err:
                reason = "connection error" if not isinstance(err, TimeoutError) else "timeout"
            else:
                self._store(key, content)
                return content, False
            if attempt < cfg.max_retries:
                self.sleep(delay)
        raise RequestFailed(f"{reason} after {cfg.max_retries + 1} attempts")

    def teach(self, rows: Sequence[dict]) -> TeachResult:
        """References for `rows` (each with `prompt` and `label`), asked at most `max_concurrency` at a time."""

        def one(row: dict) -> tuple[str | None, str, bool]:
            try:
                content, cached = self.complete(build_messages(row["prompt"], data_format=self.data_format))
            except RequestFailed as failed:
                return None, f"request failed: {failed.reason}", False
            reference, reason = judge(content, row["label"], self.cfg.max_rationale_chars)
            return reference, reason, cached

        result = TeachResult([])
        with ThreadPoolExecutor(max_workers=self.cfg.max_concurrency) as pool:
            for reference, reason, cached in pool.map(one, rows):
                result.references.append(reference)
                result.cached += cached
                if reason:
                    result.rejected[reason] += 1
        result.requests = self.requests
        return result
