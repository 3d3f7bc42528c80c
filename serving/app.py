"""The Ray Serve detector app: one deployment per replica hosts vLLM (base + local LoRA), vLLM's OpenAI API and /detect.

Ray Serve LLM's `LLMServer` owns the vLLM engine and, as a late-bound ingress, serves vLLM's own FastAPI app
(`/v1/chat/completions`, `/v1/models`, `/health`, ...). The adapter is registered statically through vLLM's
`lora_modules`, so it stays a local PEFT folder (Ray's dynamic LoRA loading only reads cloud storage).
`DetectorServer` adds `POST /detect` to that app; the request logic lives in `serving.detect`. `serving.guard`
wraps the whole app: only /detect, /v1/models, /v1/(chat/)completions and /health are routed, behind API keys,
a body cap, a bounded queue and a timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import serve
from ray.serve.llm import LLMConfig, LLMServer, build_llm_deployment
from starlette.requests import Request
from starlette.responses import JSONResponse

from contract.actor_env import forwarded_env
from contract.completion_format import ANSWER_OPEN, THINK_CLOSE, answer_token_budget
from pipelines.prompts.render import estimate_tokens
from pipelines.reading.log_formats import line_parser
from pipelines.reading.regex_format import RegexFormat
from pipelines.templates.miner import LogTemplateMiner
from serving.adapters import BOARD_NAMESPACE, AdapterChoiceError, available_versions, resolve_adapter
from serving.auth import admin_key_digests, key_digests
from serving.cascade import MODEL, STAGE_FILE, ClassicalStage
from serving.config import ServeConfig
from serving.detect import (
    DETECT_PRIORITY,
    AdapterInfo,
    DetectLimits,
    DetectPlan,
    InvalidDetectRequest,
    TokenLogprobs,
    chat_overhead_tokens,
    check_tags_survive_decoding,
    classical_response,
    detect_response,
    forced_plan,
    load_adapter_info,
    parse_detect_request,
    plan_detection,
    prompt_token_budget,
    token_counter,
)
from serving.engine_internals import (
    SkipNodeInit,
    bind_replica_grpc_to_node_address,
    engine_error_type,
    lora_module,
    routes_added_on_build,
    swap_adapter,
)
from serving.errors import error_response
from serving.fairness import BULK_PRIORITY, OpenAICaps
from serving.guard import TOO_DEEP, DetectorGuard, GuardSettings

logger = logging.getLogger(__name__)
DEFAULT_APP_NAME = "logrl-detector"


@dataclass(frozen=True)
class DetectorSettings:
    """What each replica needs for /detect besides the engine: the adapter, the miner file, the format, limits."""

    adapter: AdapterInfo
    miner_state_path: str
    data_format: str
    limits: DetectLimits
    tokenizer_path: str | None = None  # prompts are fitted with this tokenizer's counts (else a byte estimate)
    guard: GuardSettings | None = None
    adapters_dir: str | None = None  # versions /admin/adapters may switch to; None: switching is off
    max_lora_rank: int = 16
    board: str | None = None  # the app's AdapterBoard actor, polled every poll_s for switches made elsewhere
    poll_s: float = 1.0
    classical_stage_path: str | None = (
        None  # the cascade's first stage (serving.cascade); None: every window to the model
    )
    cascade: bool = False  # the default for requests that do not say
    grounded: bool = False  # the default for reasoning-mode requests that do not say
    force_verdict: bool = False  # budget forcing: a reasoning completion cut before its answer is asked for it
    decide_known_anomalies: bool = False
    regex: RegexFormat | None = None  # format regex: its data.regex (line regex and label rule)


class EngineError(RuntimeError):
    """The engine refused or failed a generation (for example a prompt longer than max_model_len)."""

    def __init__(self, message: str, status_code: int):
        super().__init__(message)
        self.status_code = status_code


@routes_added_on_build
class DetectorServer(LLMServer):
    """LLMServer plus POST /detect on the same vLLM app; the miner is loaded once per replica."""

    async def __init__(self, llm_config: LLMConfig, *, detector: DetectorSettings):
        bind_replica_grpc_to_node_address()
        count_tokens = estimate_tokens
        if detector.tokenizer_path:
            from transformers import AutoTokenizer

            count_tokens = token_counter(AutoTokenizer.from_pretrained(detector.tokenizer_path))
        self._set_up_detector(detector, LogTemplateMiner.load(detector.miner_state_path), count_tokens)
        await super().__init__(llm_config)
        await self._warm_up()
        if detector.board:
            board = ray.get_actor(detector.board, namespace=BOARD_NAMESPACE)
            await self._follow(board)  # a replica started after a switch serves the switched-to version at once
            self._follower = asyncio.create_task(self._follow_forever(board))

    def _set_up_detector(self, detector: DetectorSettings, miner: LogTemplateMiner, count_tokens) -> None:
        """The replica's /detect state, apart from the engine."""
        self._detector = detector
        self._miner = miner
        self._count_tokens = count_tokens
        self._adapter = detector.adapter  # the version this replica serves now; /admin/adapters switches it
        self._switching = asyncio.Lock()
        self._board_serial = -1
        self._follower: asyncio.Task | None = None
        self._stage = (
            ClassicalStage.load(detector.classical_stage_path, detector.decide_known_anomalies)
            if detector.classical_stage_path
            else None
        )

    def add_routes(self, app) -> None:
        """/detect and /admin/adapters beside vLLM's OpenAI routes, and the guard in front of them all."""
        app.add_api_route("/detect", self.detect, methods=["POST"])
        app.add_api_route("/admin/adapters", self.admin_adapters, methods=["GET", "POST"])
        if self._detector.guard is not None:
            app.add_middleware(DetectorGuard, settings=self._detector.guard)

    async def detect(self, request: Request) -> JSONResponse:
        """POST /detect: {"lines": [...], "fast": bool} -> verdict, rationale, templates, adapter version."""
        started = time.perf_counter()
        payload, refusal = await _json_body(request)
        if refusal is not None:
            return refusal
        settings = self._detector
        try:
            # Validation, normalisation and template matching of up to max_request_lines lines are CPU work:
            # off the event loop, so other requests on this replica keep flowing.
            plan = await asyncio.to_thread(self._plan, payload)
        except InvalidDetectRequest as err:
            return error_response(err.status_code, err.message, param="lines")
        adapter = self._adapter  # the version that answers, fixed before generation starts
        stage_reason = None
        if self._stage is not None and (settings.cascade if plan.cascade is None else plan.cascade):
            decision = self._stage.judge(plan.rendered.template_ids)
            if decision.decision != MODEL:  # the classical first stage decided: no generation
                latency_ms = (time.perf_counter() - started) * 1000
                return JSONResponse(classical_response(decision, plan, adapter, latency_ms, settings.limits))
            stage_reason = decision.reason
        try:
            completion, token_logprobs, finish = await self._complete(plan)
            forced = (
                forced_plan(plan, completion, settings.limits)
                if settings.force_verdict and finish == "length"
                else None
            )
            if forced is not None:  # budget forcing: the cut rationale, closed, asked for its verdict
                plan = forced
                completion, token_logprobs, _ = await self._complete(plan)
        except EngineError as err:
            return error_response(err.status_code, str(err))
        latency_ms = (time.perf_counter() - started) * 1000
        body = detect_response(completion, plan, adapter, latency_ms, settings.limits, token_logprobs, stage_reason)
        return JSONResponse(body)

    async def admin_adapters(self, request: Request) -> JSONResponse:
        """GET: the version served and those available. POST {"version": V}: serve V here, then on every replica."""
        settings = self._detector
        if settings.adapters_dir is None:
            return error_response(404, "adapter switching is off for this app (no adapters folder)")
        if request.method == "GET":
            available = await asyncio.to_thread(available_versions, settings.adapters_dir)
            return JSONResponse({**self._adapter_card(), "available": available})
        payload, refusal = await _json_body(request)
        if refusal is not None:
            return refusal
        version = payload.get("version") if isinstance(payload, dict) else None
        previous = self._adapter.version
        try:
            info = await asyncio.to_thread(
                resolve_adapter, settings.adapters_dir, version, self._adapter.name, settings.max_lora_rank
            )
            await self._switch(info)
        except AdapterChoiceError as err:
            return error_response(err.status_code, str(err), param="version")
        except Exception as err:  # the engine refused the weights: this replica keeps the previous version
            return error_response(500, f"loading adapter version {version!r} failed: {err}", param="version")
        if settings.board:
            await ray.get_actor(settings.board, namespace=BOARD_NAMESPACE).post.remote(info.version, info.path)
        return JSONResponse(
            {**self._adapter_card(), "previous_version": previous, "other_replicas_follow_within_s": settings.poll_s}
        )

    def _adapter_card(self) -> dict[str, Any]:
        return {"adapter": self._adapter.name, "adapter_version": self._adapter.version}

    async def _switch(self, info: AdapterInfo) -> None:
        async with self._switching:
            if info.path != self._adapter.path:
                await swap_adapter(self, info.name, info.path)
                self._adapter = info  # no await since the swap: the name and the reported version change together

    async def _follow(self, board: Any) -> None:
        serial, version, path = await board.current.remote()
        if serial != self._board_serial:
            if path != self._adapter.path:
                await self._switch(await asyncio.to_thread(load_adapter_info, self._adapter.name, path))
            self._board_serial = serial

    async def _follow_forever(self, board: Any) -> None:
        while True:
            await asyncio.sleep(self._detector.poll_s)
            try:
                await self._follow(board)
            except Exception as err:  # keep serving the current version; try again next poll
                logger.warning("adapter board poll failed: %s", err)

    async def _warm_up(self) -> None:
        """One /detect generation before the replica takes requests: the first one with the adapter pays one-off
        costs (over 30 s on a busy 2-core box), which would otherwise land on a client and its timeout."""
        started = time.perf_counter()
        plan = await asyncio.to_thread(self._plan, {"lines": ["logrl warm-up line"], "fast": True})
        try:
            await self._complete(plan)
        except EngineError as err:  # the replica still starts; the first request will say what is wrong
            logger.warning("warm-up generation failed: %s", err)
        logger.info("warm-up generation took %.1fs", time.perf_counter() - started)

    def _plan(self, payload: Any) -> DetectPlan:
        settings = self._detector
        detect_request = parse_detect_request(payload, settings.limits)
        return plan_detection(
            detect_request,
            self._miner,
            settings.data_format,
            settings.limits,
            self._count_tokens,
            settings.regex,
            settings.grounded,
        )

    async def _complete(self, plan: DetectPlan) -> tuple[str, list[TokenLogprobs], str | None]:
        """One non-streaming chat completion with the adapter, through vLLM's OpenAI chat layer, ahead of /v1 work
        in the engine's queue: the text, each generated token's top log-probs (for the score), the finish reason."""
        from ray.serve.llm.openai_api_models import ChatCompletionRequest

        error_type = engine_error_type()

        chat_request = ChatCompletionRequest(
            model=self._adapter.name, messages=plan.messages, stream=False, priority=DETECT_PRIORITY, **plan.sampling
        )
        async for response in await self.chat(chat_request):
            if isinstance(response, error_type):
                raise EngineError(response.error.message, response.error.code)
            choice = response.choices[0]
            generated = choice.logprobs.content if choice.logprobs and choice.logprobs.content else []
            tokens = [(item.token, [(top.token, top.logprob) for top in item.top_logprobs]) for item in generated]
            return choice.message.content or "", tokens, choice.finish_reason
        raise EngineError("the engine returned no completion", 500)


async def _json_body(request: Request) -> tuple[Any, JSONResponse | None]:
    """The decoded JSON body, or the OpenAI-shaped refusal of a body that is not JSON."""
    try:
        return await request.json(), None
    except UnicodeDecodeError:
        return None, error_response(422, "body is not valid UTF-8")
    except json.JSONDecodeError:
        return None, error_response(400, "body is not valid JSON")
    except RecursionError:
        return None, error_response(400, TOO_DEEP)


def _replica_env() -> dict[str, str]:
    """The job's runtime_env env vars plus this process's settings every actor shares (`contract.actor_env`).

    Ray Serve LLM replaces the job's `env_vars` with the LLMConfig's, so the job's (e.g. PYTHONPATH) are merged in,
    and this process's PYTHONPATH where the job sets none.
    """
    env: dict[str, str] = {}
    if ray.is_initialized():  # get_runtime_context() would otherwise start a Ray instance on every interface
        env = dict((ray.get_runtime_context().runtime_env or {}).get("env_vars", {}))
    for key, value in forwarded_env(also=("PYTHONPATH",)).items():
        env.setdefault(key, value)
    return env


def base_model_id(model_path: str) -> str:
    """The name clients use for the base model: a local folder's name, or the HF id as given."""
    path = Path(model_path)
    return path.resolve().name if path.exists() else model_path


def detector_llm_config(serve_cfg: ServeConfig, model_path: str, adapter: AdapterInfo) -> LLMConfig:
    """Ray Serve LLM config: vLLM with LoRA on, the local adapter registered by name, CPU or GPU placement."""
    model_id = base_model_id(model_path)
    engine_kwargs: dict[str, Any] = {
        "dtype": serve_cfg.dtype,
        "enforce_eager": serve_cfg.enforce_eager,
        "max_model_len": serve_cfg.max_model_len,
        "enable_lora": True,
        "max_lora_rank": serve_cfg.max_lora_rank,
        "max_loras": serve_cfg.max_loras,
        # A frontend arg: vLLM's init_app_state registers it as a static adapter, served under `name`.
        "lora_modules": [lora_module(adapter.name, adapter.path, model_id)],
        # /detect asks with priority 0, the guard pins /v1 work to BULK_PRIORITY: the engine runs /detect first.
        "scheduling_policy": "priority",
    }
    extra: dict[str, Any]
    if serve_cfg.num_gpus_per_replica > 0:
        engine_kwargs["gpu_memory_utilization"] = serve_cfg.gpu_memory_utilization
        extra = {"placement_group_config": {"bundles": [{"GPU": serve_cfg.num_gpus_per_replica}]}}
    else:
        extra = {"accelerator_config": {"kind": "cpu"}}
    if Path(model_path).is_dir():  # an HF id still goes through Ray's download step on each node
        extra["callback_config"] = {"callback_class": SkipNodeInit}
    return LLMConfig(
        model_loading_config={"model_id": model_id, "model_source": model_path},
        engine_kwargs=engine_kwargs,
        deployment_config={
            **replica_count_config(serve_cfg),
            "ray_actor_options": {"num_cpus": serve_cfg.num_cpus_per_replica},
            # The replica's guard queues and refuses (429 with Retry-After, in the OpenAI shape): Serve hands each
            # replica twice what the guard holds, so requests over it reach the guard and are refused there at
            # once, and Serve's own queue is unbounded, so it never answers its plain-text 503 (backpressure).
            "max_ongoing_requests": 2 * guard_capacity(serve_cfg),
            "max_queued_requests": -1,
        },
        runtime_env={"env_vars": _replica_env()},
        log_engine_metrics=False,
        **extra,
    )


def replica_count_config(serve_cfg: ServeConfig) -> dict[str, Any]:
    """Serve's replica settings: a fixed count, or autoscaling between min and max on ongoing requests."""
    scaling = serve_cfg.autoscaling
    if scaling is None:
        return {"num_replicas": serve_cfg.num_replicas}
    return {
        "autoscaling_config": {
            "min_replicas": scaling.min_replicas,
            "initial_replicas": scaling.min_replicas,
            "max_replicas": scaling.max_replicas,
            "target_ongoing_requests": scaling.target_ongoing_requests,
        }
    }


def guard_capacity(serve_cfg: ServeConfig) -> int:
    """Requests one replica's guard holds (working on /detect, on /v1 generation, and waiting) before a 429."""
    return serve_cfg.max_ongoing_requests + serve_cfg.openai_limits.max_ongoing_requests + serve_cfg.max_queued_requests


def guard_settings(serve_cfg: ServeConfig) -> GuardSettings:
    """What each replica's guard enforces; only key digests leave this process, never the keys."""
    limits = serve_cfg.openai_limits
    budget = limits.tokens_per_minute_per_key
    return GuardSettings(
        key_digests=key_digests(serve_cfg),
        max_request_bytes=serve_cfg.max_request_bytes,
        max_ongoing_requests=serve_cfg.max_ongoing_requests,
        max_queued_requests=serve_cfg.max_queued_requests,
        request_timeout_s=serve_cfg.request_timeout_s,
        adapter_name=serve_cfg.adapter_name,
        default_model=serve_cfg.default_model,
        admin_key_digests=admin_key_digests(serve_cfg),
        openai_caps=OpenAICaps(
            max_n=limits.max_n,
            max_tokens=limits.max_tokens,
            max_prompts=limits.max_prompts,
            allow_ignore_eos=limits.allow_ignore_eos,
            max_logprobs=limits.max_logprobs,
            priority=BULK_PRIORITY,
        ),
        max_ongoing_bulk_requests=limits.max_ongoing_requests,
        # Serve spreads a key's requests over the replicas; each holds an equal share of its budget.
        tokens_per_minute_per_key=budget / serve_cfg.initial_replicas if budget else None,
    )


def build_detector_app(
    serve_cfg: ServeConfig,
    model_path: str,
    adapter_path: str,
    miner_state_path: str,
    data_format: str,
    max_prompt_tokens: int,
    regex: RegexFormat | None = None,
    board: str | None = None,
) -> serve.Application:
    """The detector as a Serve application; checks the format, adapter, miner and tokenizer before anything deploys.

    `data_format` is the run's, any format prepare-data reads; format regex needs `regex` (the run's data.regex).
    """
    from transformers import AutoTokenizer

    line_parser(data_format, regex)  # format regex without data.regex fails here, naming the field

    adapter = load_adapter_info(serve_cfg.adapter_name, adapter_path)
    if adapter.rank > serve_cfg.max_lora_rank:
        raise ValueError(f"adapter rank {adapter.rank} > serve.max_lora_rank {serve_cfg.max_lora_rank}; raise it")
    LogTemplateMiner.load(miner_state_path)  # a bad miner file fails here, not in every replica
    stage_path = Path(miner_state_path).parent / STAGE_FILE  # written with the data (cluster.stages)
    if stage_path.is_file():
        ClassicalStage.load(stage_path)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    check_tags_survive_decoding(tokenizer)
    fast_max_new_tokens = serve_cfg.fast_max_new_tokens or answer_token_budget(
        lambda text: tokenizer.encode(text, add_special_tokens=False)
    )
    max_model_len = serve_cfg.max_model_len or tokenizer.model_max_length
    # Budget forcing continues a cut rationale (at most max_new_tokens) closed by the tags, for a fast-mode answer.
    forcing = fast_max_new_tokens + len(tokenizer.encode(THINK_CLOSE + ANSWER_OPEN, add_special_tokens=False))
    prompt_budget = prompt_token_budget(
        max_model_len,
        max(serve_cfg.max_new_tokens + (forcing if serve_cfg.force_verdict else 0), fast_max_new_tokens),
        chat_overhead_tokens(tokenizer, data_format),
        max_prompt_tokens,
    )
    settings = DetectorSettings(
        adapter=adapter,
        miner_state_path=str(Path(miner_state_path).resolve()),
        data_format=data_format,
        limits=DetectLimits(
            max_request_lines=serve_cfg.max_request_lines,
            max_line_chars=serve_cfg.max_line_chars,
            max_prompt_tokens=prompt_budget,
            max_new_tokens=serve_cfg.max_new_tokens,
            fast_max_new_tokens=fast_max_new_tokens,
            max_response_templates=serve_cfg.max_response_templates,
            max_template_chars=serve_cfg.max_template_chars,
        ),
        tokenizer_path=model_path,
        guard=guard_settings(serve_cfg),
        adapters_dir=str(Path(serve_cfg.adapters_dir or Path(adapter.path).parent).resolve()),
        max_lora_rank=serve_cfg.max_lora_rank,
        board=board,
        poll_s=serve_cfg.adapter_poll_s,
        classical_stage_path=str(stage_path.resolve()) if stage_path.is_file() else None,
        cascade=serve_cfg.cascade,
        grounded=serve_cfg.grounded,
        force_verdict=serve_cfg.force_verdict,
        decide_known_anomalies=serve_cfg.cascade_decides_known_anomalies,
        regex=regex,
    )
    return build_llm_deployment(
        detector_llm_config(serve_cfg, model_path, adapter),
        deployment_cls=serve.ingress()(DetectorServer),
        bind_kwargs={"detector": settings},
    )
