"""The /detect core without Ray or vLLM: validate a request, build the chat and sampling, shape the answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from pipelines.prompts import RenderedPrompt, build_messages, render_raw_lines
from pipelines.reasoning_format import ANSWER_CLOSE, ANSWER_OPEN, THINK_CLOSE, THINK_OPEN, parse_completion
from pipelines.templates import LogTemplateMiner

REASON_MODE, FAST_MODE = "reason", "fast"


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


@dataclass(frozen=True)
class DetectPlan:
    """Everything the engine needs for one /detect request, plus what the response reports back."""

    messages: list[dict]
    sampling: dict[str, Any]
    rendered: RenderedPrompt
    mode: str
    prefill: str = ""  # the start of the assistant turn, written for the model (fast mode: "<answer>")


def load_adapter_info(name: str, path: str | Path) -> AdapterInfo:
    """Read a PEFT folder's rank; its version is the folder name (symlinks such as `latest` resolved)."""
    folder = Path(path).resolve()
    config_file = folder / "adapter_config.json"
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
    if len(request.lines) > limits.max_request_lines:
        raise InvalidDetectRequest(
            f"too many lines: {len(request.lines)} > {limits.max_request_lines}; split the session into smaller ones"
        )
    for number, line in enumerate(request.lines, start=1):
        if len(line) > limits.max_line_chars:
            raise InvalidDetectRequest(
                f"line {number} has {len(line)} characters, more than the limit of {limits.max_line_chars}"
            )
    return request


def sampling_for(fast: bool, limits: DetectLimits) -> dict[str, Any]:
    """Greedy sampling; fast mode continues a prefilled `<answer>` and stops right after `</answer>` (kept)."""
    if fast:
        return {
            "temperature": 0.0,
            "max_completion_tokens": limits.fast_max_new_tokens,
            "stop": [ANSWER_CLOSE],
            "include_stop_str_in_output": True,
            "add_generation_prompt": False,
            "continue_final_message": True,
        }
    return {"temperature": 0.0, "max_completion_tokens": limits.max_new_tokens}


def plan_detection(
    request: DetectRequest, miner: LogTemplateMiner, data_format: str, limits: DetectLimits
) -> DetectPlan:
    """Render the lines exactly as training did, and pick the system prompt and sampling for the mode."""
    rendered = render_raw_lines(request.lines, data_format, miner, limits.max_prompt_tokens)
    messages = build_messages(rendered.text, fast=request.fast)
    # Fast mode (R-Log's answer-first variant) prefills `<answer>`: the verdict is the very next token,
    # whatever a small model would otherwise start with.
    prefill = ANSWER_OPEN if request.fast else ""
    if prefill:
        messages.append({"role": "assistant", "content": prefill})
    return DetectPlan(
        messages=messages,
        sampling=sampling_for(request.fast, limits),
        rendered=rendered,
        mode=FAST_MODE if request.fast else REASON_MODE,
        prefill=prefill,
    )


def detect_response(completion: str, plan: DetectPlan, adapter: AdapterInfo, latency_ms: float) -> dict[str, Any]:
    """The /detect answer; the verdict comes only from the model's completion, never from the log text."""
    parsed = parse_completion(plan.prefill + completion)
    return {
        "verdict": parsed.verdict,
        "well_formed": parsed.well_formed,
        "rationale": parsed.rationale,
        "templates": list(plan.rendered.templates),
        "malformed_lines": list(plan.rendered.malformed),
        "adapter": adapter.name,
        "adapter_version": adapter.version,
        "mode": plan.mode,
        "latency_ms": round(latency_ms, 3),
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
