"""The /detect HTTP shell without a Ray cluster or an engine: the server's chat call is replaced by a stub."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipelines.prompts.render import estimate_tokens
from serving.app import DetectorServer, DetectorSettings
from serving.detect import AdapterInfo


class _EngineFreeServer(DetectorServer):
    def __del__(self):  # LLMServer's async __del__ would warn for an engine that never started
        pass


def _server(miner, limits, replies, adapters_dir=None, **settings_kwargs):
    """A DetectorServer without its engine: `chat` yields the next canned reply and records the request."""
    from vllm.entrypoints.serve.engine.protocol import ErrorInfo, ErrorResponse

    server = object.__new__(_EngineFreeServer)  # skips LLMServer's async engine start
    settings = DetectorSettings(
        adapter=AdapterInfo("logrl-detector", "v7", "/adapters/v7", 16),
        miner_state_path="unused",
        limits=limits,
        adapters_dir=adapters_dir,
        **({"data_format": "bgl"} | settings_kwargs),
    )
    server._set_up_detector(settings, miner, estimate_tokens)
    server.requests = []

    async def chat(request):
        server.requests.append(request)
        reply = replies.pop(0)

        async def stream():
            if isinstance(reply, tuple):
                yield ErrorResponse(error=ErrorInfo(message=reply[1], type="BadRequestError", code=reply[0]))
            else:  # a completion text, or {"content": text, "logprobs": [(token, {alt: logprob})], "finish": reason}
                text, tokens = (reply["content"], reply.get("logprobs", [])) if isinstance(reply, dict) else (reply, [])
                finish = reply.get("finish", "stop") if isinstance(reply, dict) else "stop"
                content = [
                    SimpleNamespace(
                        token=token, top_logprobs=[SimpleNamespace(token=t, logprob=lp) for t, lp in tops.items()]
                    )
                    for token, tops in tokens
                ]
                logprobs = SimpleNamespace(content=content) if content else None
                yield SimpleNamespace(
                    choices=[
                        SimpleNamespace(message=SimpleNamespace(content=text), logprobs=logprobs, finish_reason=finish)
                    ]
                )

        return stream()

    server.chat = chat
    app = FastAPI()
    app.add_api_route("/detect", server.detect, methods=["POST"])
    app.add_api_route("/admin/adapters", server.admin_adapters, methods=["GET", "POST"])
    return server, TestClient(app)


@pytest.mark.parametrize("fast", [False, True])
def test_detect_returns_the_parsed_completion(fast, bgl_raw_lines, miner, limits):
    completion = "anomalous</answer>" if fast else "<think>L2 is fatal</think><answer>anomalous</answer>"
    server, client = _server(miner, limits, [completion])
    body = client.post("/detect", json={"lines": bgl_raw_lines[:10], "fast": fast}).json()
    assert body["verdict"] == "anomalous" and body["well_formed"] is True
    assert body["mode"] == ("fast" if fast else "reason")
    assert (body["adapter"], body["adapter_version"]) == ("logrl-detector", "v7")
    request = server.requests[0]
    assert request.model == "logrl-detector" and request.temperature == 0.0 and request.stream is False
    assert request.max_completion_tokens == (limits.fast_max_new_tokens if fast else limits.max_new_tokens)
    assert (request.stop == ["</answer>"]) is fast and request.include_stop_str_in_output is fast
    # Ahead of /v1 work in the engine, with the log-probs `score` is read from.
    assert request.priority == 0 and request.logprobs is True and request.top_logprobs == 20
    assert body["score"] is None  # the stub sent no log-probs


def test_detect_scores_the_verdict_token_from_the_engines_logprobs(bgl_raw_lines, miner, limits):
    reply = {"content": "anomalous</answer>", "logprobs": [("anomalous", {"anomalous": -0.1, "normal": -2.4})]}
    _, client = _server(miner, limits, [reply])
    body = client.post("/detect", json={"lines": bgl_raw_lines[:10], "fast": True}).json()
    assert body["verdict"] == "anomalous" and body["score"] == pytest.approx(0.909, abs=1e-3)


@pytest.mark.parametrize("force", [False, True])
def test_a_rationale_cut_by_its_budget_is_asked_for_its_verdict_when_forcing_is_on(force, bgl_raw_lines, miner, limits):
    cut = {"content": '<think>L2 "RAS KERNEL FATAL data storage" is a fault; L3 "instruction', "finish": "length"}
    verdict = {"content": "anomalous</answer>", "logprobs": [("anomalous", {"anomalous": -0.1, "normal": -2.4})]}
    server, client = _server(miner, limits, [cut, verdict], force_verdict=force)
    body = client.post("/detect", json={"lines": bgl_raw_lines[:10]}).json()
    if not force:  # the cut completion is the answer: no verdict, one generation
        assert (body["verdict"], body["well_formed"], body["forced"], len(server.requests)) == (None, False, False, 1)
        return
    closed = '<think>L2 "RAS KERNEL FATAL data storage" is a fault;</think><answer>'
    assert (body["verdict"], body["well_formed"], body["forced"]) == ("anomalous", True, True)
    assert body["rationale"] == 'L2 "RAS KERNEL FATAL data storage" is a fault;' and body["mode"] == "reason"
    assert body["score"] == pytest.approx(0.909, abs=1e-3)  # read at the forced verdict token
    first, second = server.requests
    # the same chat, the closed rationale as the assistant's turn, continued as fast mode continues `<answer>`
    assert [m["content"] for m in second.messages] == [m["content"] for m in first.messages] + [closed]
    assert second.continue_final_message is True and second.add_generation_prompt is False
    assert second.max_completion_tokens == limits.fast_max_new_tokens and second.stop == ["</answer>"]


def test_detect_reads_format_regex_lines_with_the_settings_regex(limits):
    from pipelines.reading.log_formats import parse_line
    from pipelines.reading.regex_format import RegexFormat
    from pipelines.templates.miner import LogTemplateMiner

    regex = RegexFormat(r"(?P<level>[A-Z]+) \[(?P<component>[^\]]+)\] (?P<content>.*)")
    lines = ["INFO [web] GET /1 200", "ERROR [db] connection 7 refused", "INFO [web] GET /2 200"]
    miner = LogTemplateMiner.fit(parse_line(text, "regex", regex)["content"] for text in lines)
    server, client = _server(
        miner, limits, ["<think>L2</think><answer>anomalous</answer>"], data_format="regex", regex=regex
    )
    body = client.post("/detect", json={"lines": lines}).json()
    assert body["malformed_lines"] == [] and body["verdict"] == "anomalous"
    assert "db ERROR: connection <NUM> refused" in server.requests[0].messages[-1]["content"]


def test_serving_format_regex_without_data_regex_fails_before_deploying():
    from serving.app import build_detector_app
    from serving.config import ServeConfig

    with pytest.raises(ValueError, match=r"format regex needs its line regex: set data\.regex"):
        build_detector_app(ServeConfig(), "no-model", "no-adapter", "no-miner.json", "regex", 640)


def test_engine_errors_keep_their_status_and_message(bgl_raw_lines, miner, limits):
    message = "This model's maximum context length is 768 tokens."
    _, client = _server(miner, limits, [(400, message)])
    response = client.post("/detect", json={"lines": bgl_raw_lines[:3]})
    assert response.status_code == 400
    assert response.json() == {"error": {"message": message, "type": "BadRequestError", "param": None, "code": 400}}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"not json", 400, "not valid JSON"),
        (b'{"lines": []}', 422, "lines is empty"),
        (b'{"lines": ["a"], "fast": 1}', 422, "fast: Input should be a valid boolean"),
        (b'{"lines": ["ok", "x \\ud800"]}', 422, "line 2 is not valid Unicode text: a lone surrogate U+D800"),
        (b'{"lines": ["", "  "]}', 422, "every line is empty or whitespace"),
    ],
)
def test_bad_requests_never_reach_the_engine(body, status, fragment, miner, limits):
    server, client = _server(miner, limits, [])
    response = client.post("/detect", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status and fragment in response.json()["error"]["message"]
    assert server.requests == []


def test_template_matching_runs_off_the_event_loop(bgl_raw_lines, miner, limits):
    import threading

    server, client = _server(miner, limits, ["<answer>normal</answer>"])
    threads = {}
    plan = server._plan

    def recording_plan(payload):
        threads["plan"] = threading.get_ident()
        return plan(payload)

    async def recording_chat(request, chat=server.chat):
        threads["loop"] = threading.get_ident()
        return await chat(request)

    server._plan, server.chat = recording_plan, recording_chat
    assert client.post("/detect", json={"lines": bgl_raw_lines[:50]}).status_code == 200
    assert threads["plan"] != threads["loop"]  # the event loop kept serving while lines were matched


def test_admin_switches_the_version_that_answers(bgl_raw_lines, miner, limits, tmp_path, monkeypatch):
    import json

    import serving.app

    swapped = []

    async def swap_adapter(server, name, path):  # the engine-side load (serving.engine_internals) needs vLLM
        swapped.append((name, path))
        return len(swapped)

    monkeypatch.setattr(serving.app, "swap_adapter", swap_adapter)
    for version, rank in (("v7", 8), ("v8", 8), ("wide-v9", 64)):
        (tmp_path / version).mkdir()
        (tmp_path / version / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank}))
    answer = "<think>ok</think><answer>normal</answer>"
    server, client = _server(miner, limits, [answer, answer], adapters_dir=str(tmp_path))
    assert client.get("/admin/adapters").json() == {
        "adapter": "logrl-detector",
        "adapter_version": "v7",
        "available": ["v7", "v8", "wide-v9"],
    }
    assert client.post("/detect", json={"lines": bgl_raw_lines[:3]}).json()["adapter_version"] == "v7"
    switched = client.post("/admin/adapters", json={"version": "v8"})
    assert switched.status_code == 200
    assert switched.json()["previous_version"] == "v7" and switched.json()["adapter_version"] == "v8"
    assert swapped == [("logrl-detector", str((tmp_path / "v8").resolve()))]
    assert client.post("/detect", json={"lines": bgl_raw_lines[:3]}).json()["adapter_version"] == "v8"
    for body, status in (({"version": "../v7"}, 400), ({"version": "wide-v9"}, 400), ({"version": "v10"}, 404)):
        refused = client.post("/admin/adapters", json=body)
        assert refused.status_code == status and refused.json()["error"]["param"] == "version"
    assert client.post("/admin/adapters", content=b"{").status_code == 400
    assert client.post("/admin/adapters", content=b"[" * 5000 + b"]" * 5000).status_code == 400  # not a 500
    assert len(swapped) == 1 and server._adapter.version == "v8"  # refusals change nothing


def test_json_nested_too_deeply_is_a_400(miner, limits):
    _, client = _server(miner, limits, [])
    response = client.post("/detect", content=b"[" * 5000 + b"]" * 5000, headers={"content-type": "application/json"})
    assert response.status_code == 400 and "nested too deeply" in response.json()["error"]["message"]


def test_the_first_stage_answers_what_it_clears_and_passes_the_rest_on(bgl_raw_lines, miner, limits, tmp_path):
    from serving.cascade import ClassicalStage

    window = bgl_raw_lines[:10]
    ids = [miner.match(line.split(" ", 9)[-1])[0] for line in window]  # what /detect's renderer will find
    common = {template: 10 for template in ids}
    stage = ClassicalStage(normal_lines=common, max_normal_count=common).save(tmp_path / "classical_stage.json")
    reply = "<think></think><answer>anomalous</answer>"
    server, client = _server(miner, limits, [reply, reply], classical_stage_path=str(stage))
    asked = client.post("/detect", json={"lines": window}).json()  # serve.cascade is off by default
    assert (asked["stage"], asked["stage_reason"], asked["verdict"]) == ("model", None, "anomalous")
    cleared = client.post("/detect", json={"lines": window, "cascade": True}).json()
    assert (cleared["stage"], cleared["verdict"], cleared["score"]) == ("classical", "normal", None)
    assert cleared["rationale"] == "classical stage: every template is common in normal training windows"
    assert len(server.requests) == 1  # no generation for the cleared window
    suspicious = client.post("/detect", json={"lines": [*window, "not a bgl line"], "cascade": True}).json()
    assert suspicious["stage"] == "model" and suspicious["stage_reason"] == "L11 is not a well-formed log line"
    assert len(server.requests) == 2
