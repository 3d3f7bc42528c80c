"""Fair use of the engine by /v1 clients, without Ray: per-request caps, and a token budget per API key.

One small request must not be able to buy minutes of the engine (`n: 256, max_tokens: 760, ignore_eos: true`
generated 194,560 tokens while a one-line /detect waited). `shape_v1_request` refuses what exceeds the caps
(naming the field, for an OpenAI-shaped 400), gives a request that names no length the capped one, pins the
engine priority of /v1 work below /detect's, and prices the request at the tokens it may generate
(sequences x max tokens). `TokenBuckets` charges that price to the caller's key, refilling at a steady rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

CHAT_ROUTE = "/v1/chat/completions"
BULK_PRIORITY = 1  # vLLM's priority scheduling runs lower values first; /detect asks with 0


@dataclass(frozen=True)
class OpenAICaps:
    """What one /v1 generation request may ask for (from `serve.openai_limits`)."""

    max_n: int = 1
    max_tokens: int = 512
    max_prompts: int = 4
    allow_ignore_eos: bool = False
    max_logprobs: int = 5
    priority: int | None = BULK_PRIORITY  # None: the engine does not schedule by priority; leave it alone


class CapExceeded(ValueError):
    """A /v1 request over a cap; `param` is the offending field."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.message, self.param = message, param


def _count(payload: dict, key: str, default: int) -> int:
    value = payload.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise CapExceeded(f"{key} must be an integer", key)
    return value


def _prompts(payload: dict, route: str) -> int:
    """Prompts in the request: one chat, or /v1/completions' `prompt` (a string, token ids, or a list of either)."""
    prompt = payload.get("prompt")
    if route == CHAT_ROUTE or not isinstance(prompt, list) or not prompt:
        return 1
    return 1 if all(isinstance(item, int) for item in prompt) else len(prompt)


def shape_v1_request(payload: dict, route: str, caps: OpenAICaps) -> tuple[dict, int]:
    """The request as the engine should see it, and the most tokens it may generate; CapExceeded if over a cap."""
    payload = dict(payload)
    sequences = max(_count(payload, "n", 1), _count(payload, "best_of", 0))
    if sequences > caps.max_n:
        param = "n" if _count(payload, "n", 1) > caps.max_n else "best_of"
        allowed = f"{caps.max_n} completion{'s' if caps.max_n > 1 else ''}"
        raise CapExceeded(f"{param} is {sequences}; this server allows at most {allowed} per request", param)
    prompts = _prompts(payload, route)
    if prompts > caps.max_prompts:
        raise CapExceeded(f"{prompts} prompts in one request; this server allows at most {caps.max_prompts}", "prompt")
    length_keys = ("max_completion_tokens", "max_tokens") if route == CHAT_ROUTE else ("max_tokens",)
    named = [key for key in length_keys if payload.get(key) is not None]
    for key in named:
        if _count(payload, key, 0) > caps.max_tokens:
            raise CapExceeded(f"{key} is {payload[key]}; this server allows at most {caps.max_tokens}", key)
    if not named:  # unbounded would mean "up to the context length": give it the cap
        payload[length_keys[0]] = caps.max_tokens
    max_new = min(_count(payload, key, caps.max_tokens) for key in length_keys if payload.get(key) is not None)
    if payload.get("ignore_eos") and not caps.allow_ignore_eos:
        raise CapExceeded(
            "ignore_eos is not allowed on this server (serve.openai_limits.allow_ignore_eos)", "ignore_eos"
        )
    for key in ("top_logprobs", "prompt_logprobs") + (() if route == CHAT_ROUTE else ("logprobs",)):
        asked = _count(payload, key, 0)
        if asked < 0 or asked > caps.max_logprobs:
            raise CapExceeded(f"{key} is {asked}; this server allows 0 to {caps.max_logprobs}", key)
    token_ids = payload.get("logprob_token_ids")
    if isinstance(token_ids, list) and len(token_ids) > caps.max_logprobs:
        raise CapExceeded(
            f"logprob_token_ids lists {len(token_ids)} tokens; at most {caps.max_logprobs}", "logprob_token_ids"
        )
    if caps.priority is not None:
        payload["priority"] = caps.priority  # a client cannot jump ahead of /detect
    return payload, sequences * prompts * max(max_new, 0)


@dataclass
class TokenBuckets:
    """Per-key token buckets: each holds up to `capacity` tokens and refills at `rate_per_s`; pure, clock injected."""

    capacity: float
    rate_per_s: float
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, as of)

    def take(self, key: str, cost: float) -> float:
        """Charge `cost` to `key` and return 0, or charge nothing and return the seconds until it would fit."""
        now = self.clock()
        tokens, since = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - since) * self.rate_per_s)
        if cost <= tokens or tokens >= self.capacity:  # a request over the whole burst goes when the bucket is full
            self._buckets[key] = (tokens - cost, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (min(cost, self.capacity) - tokens) / self.rate_per_s

    @classmethod
    def per_minute(cls, tokens_per_minute: float, clock: Callable[[], float] = time.monotonic) -> TokenBuckets:
        """A minute's budget as the burst, refilled evenly over the minute."""
        return cls(capacity=tokens_per_minute, rate_per_s=tokens_per_minute / 60, clock=clock)


def retry_after_header(seconds: float) -> dict[str, str]:
    """`Retry-After` in whole seconds, at least 1."""
    return {"retry-after": str(max(1, math.ceil(seconds)))}


def budget_refusal(wait_s: float, cost: int) -> tuple[str, dict[str, str]]:
    """The message and headers of a 429 for a key over its token budget."""
    return (
        f"this API key's token budget is spent: this request may generate {cost} tokens; retry in {math.ceil(wait_s)}s",
        retry_after_header(wait_s),
    )
