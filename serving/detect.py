"""The /detect core without Ray or vLLM: validate a request, build the chat and sampling, shape the answer."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from contract.adapter_store import PEFT_CONFIG_FILE
from contract.chat_tokens import chat_token_ids, prefill_for, with_prefill
from contract.completion_format import (
    ANSWER_CLOSE,
    ANSWER_OPEN,
    FAST_MODE,
    GROUNDED_MODE,
    REASON_MODE,
    THINK_CLOSE,
    THINK_OPEN,
    budget_forced_prefill,
    parse_completion,
    verdict_position,
    verdict_score,
)
from contract.evidence_grammar import grounded_grammar
from pipelines.prompts.render import (
    RenderedPrompt,
    TokenCounter,
    build_messages,
    estimate_tokens,
    render_raw_lines,
    shown_line_numbers,
)
from pipelines.reading.regex_format import RegexFormat
from pipelines.templates.miner import LogTemplateMiner
from serving.cascade import StageDecision
from serving.untrusted import clip, escape_for_response, invalid_code_point, normalize_line

DETECT_PRIORITY = 0  # vLLM priority scheduling: lower runs first; /v1 work is pinned to serving.fairness.BULK_PRIORITY
SCORE_TOP_LOGPROBS = 20  # top log-probs asked per generated token, for `score` (vLLM's default max_logprobs)
# One generated token: its text and its top (text, log-prob) alternatives.
TokenLogprobs = tuple[str, Sequence[tuple[str, float]]]


class InvalidDetectRequest(ValueError):
    """A /detect request the server refuses; `status_code` is the HTTP status to answer with."""

    def __init__(self, message: str, status_code: int = 422):
        super().__init__(message)
        self.message = message
        self.status_code = status_code


class DetectRequest(BaseModel):
    """Body of POST /detect: one session of raw log lines, in the app's data format."""

    model_config = ConfigDict(extra="forbid", strict=True)

    lines: list[str]
    fast: bool = False
    cascade: bool | None = None  # None: the server's setting (serve.cascade)
    grounded: bool | None = None  # None: the server's setting (serve.grounded); reasoning mode only


@dataclass(frozen=True)
class AdapterInfo:
    """The served adapter: the name clients ask for, its version, and the local PEFT folder."""

    name: str
    version: str
    path: str
    rank: int


@dataclass(frozen=True)
class DetectLimits:
    """Request limits and completion budgets for /detect (from ServeConfig and the data config)."""

    max_request_lines: int
    max_line_chars: int
    max_prompt_tokens: int
    max_new_tokens: int
    fast_max_new_tokens: int
    max_response_templates: int = 100
    max_template_chars: int = 300


@dataclass(frozen=True)
class DetectPlan:
    """Everything the engine needs for one /detect request, plus what the response reports back."""

    messages: list[dict]
    sampling: dict[str, Any]
    rendered: RenderedPrompt
    mode: str
    prefill: str = ""  # the start of the assistant turn, written for the model (fast mode: "<answer>")
    omitted_lines: tuple[int, ...] = ()  # 1-based numbers of request lines the prompt could not show
    request_lines: int = 0  # how many raw lines the request sent
    cascade: bool | None = None  # the request's choice; None: the server's
    forced: bool = False  # budget forcing: `prefill` is the cut rationale, closed, and the model writes the verdict


_CITED_LINE = re.compile(r"\bL(\d{1,9})\b")


def citations_not_shown(rationale: str, plan: DetectPlan) -> list[int]:
    """Line numbers the rationale cites that the model never saw: past the request's end, or omitted from the prompt.

    A small model trained on 20-line windows may write "L20" about a 3-line request; the response says so.
    """
    omitted = set(plan.omitted_lines)
    cited = {int(number) for number in _CITED_LINE.findall(rationale)}
    return sorted(n for n in cited if n < 1 or n > plan.request_lines or n in omitted)


def load_adapter_info(name: str, path: str | Path) -> AdapterInfo:
    """Read a PEFT folder's rank; its version is the folder name (symlinks such as `latest` resolved)."""
    folder = Path(path).resolve()
    config_file = folder / PEFT_CONFIG_FILE
    if not config_file.is_file():
        raise FileNotFoundError(f"{folder}: not a PEFT adapter folder (no adapter_config.json)")
    config = json.loads(config_file.read_text())
    if config.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"{folder}: peft_type {config.get('peft_type')!r} is not LORA")
    return AdapterInfo(name=name, version=folder.name, path=str(folder), rank=int(config["r"]))


def parse_detect_request(payload: Any, limits: DetectLimits) -> DetectRequest:
    """Validate a decoded JSON body; raise InvalidDetectRequest with a message a client can act on."""
    if not isinstance(payload, dict):
        raise InvalidDetectRequest('body must be a JSON object like {"lines": ["..."], "fast": false}')
    try:
        request = DetectRequest.model_validate(payload)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in err.errors())
        raise InvalidDetectRequest(f"invalid /detect body: {problems}") from None
    if not request.lines:
        raise InvalidDetectRequest("lines is empty: send at least one raw log line")
    for number, line in enumerate(request.lines, start=1):
        problem = invalid_code_point(line)
        if problem:
            raise InvalidDetectRequest(f"line {number} is not valid Unicode text: {problem}; send UTF-8 text")
    if len(request.lines) > limits.max_request_lines:
        raise InvalidDetectRequest(
            f"too many lines: {len(request.lines)} > {limits.max_request_lines}; split the session into smaller ones"
        )
    for number, line in enumerate(request.lines, start=1):
        if len(line) > limits.max_line_chars:
            raise InvalidDetectRequest(
                f"line {number} has {len(line)} characters, more than the limit of {limits.max_line_chars}"
            )
    # Controls, ANSI escapes, bidi overrides and zero-width characters never reach the prompt.
    lines = [normalize_line(line) for line in request.lines]
    if not any(line.strip() for line in lines):
        raise InvalidDetectRequest("no log text: every line is empty or whitespace; send at least one log line")
    if request.fast and request.grounded:
        raise InvalidDetectRequest("grounded applies to reasoning mode: fast mode writes no rationale to ground")
    return request.model_copy(update={"lines": lines})


def sampling_for(fast: bool, limits: DetectLimits, grammar: str | None = None) -> dict[str, Any]:
    """Greedy sampling with each token's top log-probs (for `score`); fast mode continues a prefilled `<answer>`
    and stops right after `</answer>` (kept); `grammar` (reasoning mode): the structured-output grammar the
    completion must follow (grounded decoding)."""
    scored = {"temperature": 0.0, "logprobs": True, "top_logprobs": SCORE_TOP_LOGPROBS}
    if fast:
        return {
            **scored,
            "max_completion_tokens": limits.fast_max_new_tokens,
            "stop": [ANSWER_CLOSE],
            "include_stop_str_in_output": True,
            "add_generation_prompt": False,
            "continue_final_message": True,
        }
    constrained = {"structured_outputs": {"grammar": grammar}} if grammar else {}
    return {**scored, "max_completion_tokens": limits.max_new_tokens, **constrained}


def verdict_probability(token_logprobs: Sequence[TokenLogprobs] | None, plan: DetectPlan) -> float | None:
    """P(anomalous) where the verdict is decided, as `logrl eval` reads it: the first non-blank token after
    `<answer>` (fast mode: after the prefill), when the token written there starts a verdict; None when there is no
    such token or none of its top alternatives starts a verdict."""
    if not token_logprobs:
        return None
    position = verdict_position([text for text, _ in token_logprobs], plan.prefill)
    if position is None:
        return None
    return verdict_score(list(token_logprobs[position][1]))


def prompt_token_budget(
    max_model_len: int, completion_tokens: int, chat_overhead_tokens: int, configured_max: int | None = None
) -> int:
    """Tokens the log text may take: the context minus the completion, the chat scaffolding and a small margin.

    The margin covers tokens merging across the seams where groups are joined; `configured_max` (the data
    section's `max_prompt_tokens`, what training prompts were fitted to) caps it so serving shows what training did.
    """
    room = max_model_len - completion_tokens - chat_overhead_tokens
    budget = room - 8 - room // 50
    if configured_max is not None:
        budget = min(budget, configured_max)
    if budget < 32:
        raise ValueError(
            f"max_model_len {max_model_len} leaves {budget} tokens for the log text after {completion_tokens} "
            f"completion and {chat_overhead_tokens} chat tokens; raise max_model_len or lower max_new_tokens"
        )
    return budget


def chat_overhead_tokens(tokenizer: Any, data_format: str | None = None) -> int:
    """Tokens of the chat scaffolding around an empty session, the larger of reasoning and fast mode."""
    return max(
        len(chat_token_ids(tokenizer, build_messages("", fast=fast, data_format=data_format), prefill_for(fast)))
        for fast in (False, True)
    )


def token_counter(tokenizer: Any) -> TokenCounter:
    """Count tokens of prompt text with the served model's tokenizer (no special tokens added)."""
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False))


def plan_detection(
    request: DetectRequest,
    miner: LogTemplateMiner,
    data_format: str,
    limits: DetectLimits,
    count_tokens: TokenCounter = estimate_tokens,
    regex: RegexFormat | None = None,
    grounded: bool = False,
) -> DetectPlan:
    """Render the lines exactly as training did (fitted to the token budget), and pick the prompt and sampling.

    `regex`: format regex's line regex and label rule (the run's data.regex); the other formats take none.
    `grounded`: the server's default for requests that do not say; reasoning mode is then decoded under the
    prompt's evidence grammar, so every quote is text of the line it names."""
    rendered = render_raw_lines(request.lines, data_format, miner, limits.max_prompt_tokens, count_tokens, regex)
    omitted = sorted(set(range(1, len(request.lines) + 1)) - shown_line_numbers(rendered.text))
    prefill = prefill_for(request.fast)
    grounded = not request.fast and (grounded if request.grounded is None else request.grounded)
    grammar = grounded_grammar(rendered.text) if grounded else None
    return DetectPlan(
        messages=with_prefill(build_messages(rendered.text, fast=request.fast, data_format=data_format), prefill),
        sampling=sampling_for(request.fast, limits, grammar),
        rendered=rendered,
        mode=FAST_MODE if request.fast else GROUNDED_MODE if grounded else REASON_MODE,
        prefill=prefill,
        omitted_lines=tuple(omitted),
        request_lines=len(request.lines),
        cascade=request.cascade,
    )


def forced_plan(plan: DetectPlan, completion: str, limits: DetectLimits) -> DetectPlan | None:
    """Budget forcing for a reasoning completion its token budget cut before the answer: the same chat with the
    rationale so far, closed (`budget_forced_prefill`), as the assistant's prefill, sampled as fast mode continues
    `<answer>`. None in fast mode, or when there is nothing to force (the answer was written, or the text is not a
    rationale)."""
    if plan.mode == FAST_MODE:
        return None
    prefill = budget_forced_prefill(plan.prefill + completion)
    if prefill is None:
        return None
    sampling = sampling_for(True, limits)
    return replace(plan, messages=with_prefill(plan.messages, prefill), sampling=sampling, prefill=prefill, forced=True)


def detect_response(
    completion: str,
    plan: DetectPlan,
    adapter: AdapterInfo,
    latency_ms: float,
    limits: DetectLimits | None = None,
    token_logprobs: Sequence[TokenLogprobs] | None = None,
    stage_reason: str | None = None,
) -> dict[str, Any]:
    """The /detect answer; the verdict comes only from the model's completion, never from the log text.

    `score` is P(anomalous) at the verdict token (`verdict_probability`), or None; `stage` is "model" and
    `stage_reason` why the cascade's first stage passed the window on (None: the cascade was off). `truncated` and
    `omitted_lines`
    say which request lines the model did not see; `templates` is capped in count and length (`templates_total`
    counts them all) and escaped, as is the rationale.
    """
    parsed = parse_completion(plan.prefill + completion)
    max_count = limits.max_response_templates if limits else 100
    max_chars = limits.max_template_chars if limits else 300
    templates = [escape_for_response(clip(t, max_chars)) for t in plan.rendered.templates[:max_count]]
    score = verdict_probability(token_logprobs, plan)
    return {
        "verdict": parsed.verdict,
        "score": None if score is None else round(score, 6),
        "well_formed": parsed.well_formed,
        "rationale": escape_for_response(parsed.rationale),
        "cited_lines_not_shown": citations_not_shown(parsed.rationale, plan),
        "truncated": bool(plan.omitted_lines),
        "omitted_lines": list(plan.omitted_lines),
        "templates": templates,
        "templates_total": len(plan.rendered.templates),
        "malformed_lines": list(plan.rendered.malformed),
        "adapter": adapter.name,
        "adapter_version": adapter.version,
        "mode": plan.mode,
        "forced": plan.forced,
        "stage": "model",
        "stage_reason": stage_reason,
        "latency_ms": round(latency_ms, 3),
    }


def classical_response(
    decision: StageDecision, plan: DetectPlan, adapter: AdapterInfo, latency_ms: float, limits: DetectLimits | None
) -> dict[str, Any]:
    """The /detect answer when the cascade's first stage decided the window: no generation, no score."""
    body = detect_response(f"<think></think><answer>{decision.decision}</answer>", plan, adapter, latency_ms, limits)
    return {
        **body,
        "rationale": escape_for_response(f"classical stage: {decision.reason}"),
        "stage": "classical",
        "stage_reason": decision.reason,
    }


def check_tags_survive_decoding(tokenizer: Any) -> None:
    """Fail fast if default decoding (special tokens skipped) would erase the format tags from completions."""
    sample = f"{THINK_OPEN}x{THINK_CLOSE}{ANSWER_OPEN}normal{ANSWER_CLOSE}"
    ids = tokenizer.encode(sample, add_special_tokens=False)
    decoded = tokenizer.decode(ids, skip_special_tokens=True)
    if decoded.replace(" ", "") != sample.replace(" ", ""):
        raise ValueError(
            "the tokenizer marks the <think>/<answer> tags as special tokens, so decoding drops them and every "
            f"/detect verdict would be null: {sample!r} decodes to {decoded!r}"
        )
