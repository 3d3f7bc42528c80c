"""Fair use of the engine without Ray: /v1 caps, the price of a request, per-key token buckets."""

from __future__ import annotations

import pytest

from serving.fairness import BULK_PRIORITY, CapExceeded, OpenAICaps, TokenBuckets, shape_v1_request

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
CAPS = OpenAICaps(max_n=4, max_tokens=512, max_prompts=3, max_logprobs=5)
MESSAGES = [{"role": "user", "content": "hi"}]


def test_the_issues_request_is_refused_naming_the_field():
    starving = {"messages": MESSAGES, "n": 256, "max_tokens": 760, "ignore_eos": True}
    with pytest.raises(CapExceeded) as err:
        shape_v1_request(starving, CHAT, CAPS)
    assert err.value.param == "n" and "at most 4 completions per request" in err.value.message


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        (CHAT, {"best_of": 5}, "best_of"),
        (CHAT, {"max_tokens": 513}, "max_tokens"),
        (CHAT, {"max_completion_tokens": 4096}, "max_completion_tokens"),
        (CHAT, {"ignore_eos": True}, "ignore_eos"),
        (CHAT, {"logprobs": True, "top_logprobs": 6}, "top_logprobs"),
        (CHAT, {"logprobs": True, "top_logprobs": -1}, "top_logprobs"),  # -1 is "the whole vocabulary" to vLLM
        (CHAT, {"prompt_logprobs": 20}, "prompt_logprobs"),
        (CHAT, {"logprobs": True, "logprob_token_ids": list(range(6))}, "logprob_token_ids"),
        (CHAT, {"n": "many"}, "n"),
        (COMPLETIONS, {"prompt": ["a", "b", "c", "d"]}, "prompt"),
        (COMPLETIONS, {"prompt": "a", "logprobs": 10}, "logprobs"),
    ],
)
def test_every_cap_names_its_field(route, body, param):
    with pytest.raises(CapExceeded) as err:
        shape_v1_request({"messages": MESSAGES, **body}, route, CAPS)
    assert err.value.param == param


def test_a_request_within_the_caps_is_priced_at_what_it_may_generate():
    shaped, cost = shape_v1_request({"messages": MESSAGES, "n": 2, "max_tokens": 100}, CHAT, CAPS)
    assert cost == 200 and shaped["priority"] == BULK_PRIORITY and shaped["n"] == 2
    _, cost = shape_v1_request({"prompt": ["a", "b"], "n": 3, "max_tokens": 10, "best_of": 4}, COMPLETIONS, CAPS)
    assert cost == 2 * 4 * 10  # best_of sequences per prompt are generated, n of them returned
    _, cost = shape_v1_request({"prompt": [1, 2, 3], "max_tokens": 7}, COMPLETIONS, CAPS)
    assert cost == 7  # a list of token ids is one prompt
    _, cost = shape_v1_request({"messages": MESSAGES, "max_tokens": 50, "max_completion_tokens": 30}, CHAT, CAPS)
    assert cost == 30  # vLLM stops at the smaller


def test_a_request_naming_no_length_gets_the_cap_and_cannot_jump_the_queue():
    shaped, cost = shape_v1_request({"messages": MESSAGES, "priority": -100}, CHAT, CAPS)
    assert shaped["max_completion_tokens"] == 512 and cost == 512
    assert shaped["priority"] == BULK_PRIORITY  # below /detect's 0, whatever the client asked
    shaped, _ = shape_v1_request({"prompt": "x"}, COMPLETIONS, CAPS)
    assert shaped["max_tokens"] == 512
    untouched, _ = shape_v1_request({"messages": MESSAGES}, CHAT, OpenAICaps(priority=None))
    assert "priority" not in untouched  # an engine without priority scheduling would refuse a non-zero one
    allowed, _ = shape_v1_request({"messages": MESSAGES, "ignore_eos": True}, CHAT, OpenAICaps(allow_ignore_eos=True))
    assert allowed["ignore_eos"] is True


def test_token_buckets_charge_per_key_and_say_when_to_come_back():
    now = [0.0]
    buckets = TokenBuckets.per_minute(600, clock=lambda: now[0])  # 10 tokens/s, burst 600
    assert buckets.take("a", 500) == 0
    assert buckets.take("a", 200) == pytest.approx(10.0)  # 100 left: 100 more tokens take 10 s
    assert buckets.take("b", 600) == 0  # another key has its own budget
    now[0] = 10.0
    assert buckets.take("a", 200) == 0  # refilled to 200
    assert buckets.take("a", 1) == pytest.approx(0.1)
    now[0] = 1000.0
    assert buckets.take("a", 5000) == 0  # over the whole burst: it goes once the bucket is full...
    assert buckets.take("a", 1) == pytest.approx(440.1)  # ...and the key pays it back before its next request
