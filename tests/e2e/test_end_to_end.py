"""The real path on CPU: Ray Data + drain3 -> tiny model -> DeepSpeed LoRA SFT -> vLLM rollouts ->
reward actors -> DeepSpeed GRPO -> adapter sync -> Ray Serve (/detect and the OpenAI API)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def run_cfg(tmp_path_factory, quickstart_config):
    import ray

    from cluster.environment import apply_defaults, init_ray

    apply_defaults()
    out = tmp_path_factory.mktemp("e2e")
    cfg = quickstart_config(
        out,
        "train.steps=2",
        "sft.steps=10",
        "serve.port=8123",
        "algo.kl_reference=init_adapter",  # the KL reference is a frozen copy of the SFT adapter
        "train.mlflow=true",  # SFT metrics, the SFT adapter and the eval report also go to a local MLflow run
    )
    init_ray(None, cfg.ray.num_cpus)
    yield cfg
    ray.shutdown()


def _safetensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "adapter_model.safetensors"))


def test_train_sync_and_serve(run_cfg):
    import ray
    from openai import OpenAI

    from cluster.stages import ensure_data, ensure_model, run_sft_stage, start_serving
    from contract.completion_format import VERDICTS, render_completion
    from contract.evidence import check_citations
    from pipelines.building.dataset import load_examples, raw_session_lines
    from pipelines.prompts.render import build_messages
    from reward_workers.scorer import RewardScorer
    from rl_actors.adapters import AdapterSnapshot
    from rl_actors.columns import StepBatch
    from rl_actors.prompt_source import GroupBatch
    from rl_actors.trainer import GRPOTrainer, adapters_dir
    from serving.client import detect
    from serving.launch import stop_detector

    cfg = run_cfg
    summary = ensure_data(cfg)
    assert summary["splits"]["train"]["anomalous"] > 0 and summary["malformed"] == 0
    ensure_model(cfg)
    sft_adapter = run_sft_stage(cfg)
    rows = load_examples(summary["paths"]["train"])

    trainer = GRPOTrainer(cfg, rows, str(sft_adapter))
    try:
        steps = [trainer.step(i) for i in range(cfg.train.steps)]
        # The KL reference is the frozen SFT adapter the policy starts from: before the first update they agree
        # (with the base model as reference this KL is clearly positive after SFT).
        assert steps[0]["actor/kl_mean"] < 1e-5 and steps[1]["actor/kl_mean"] >= 0
        for metrics in steps:
            for name in cfg.reward.weights:
                assert f"reward/{name}" in metrics
            assert metrics["sync/max_abs_logprob_diff"] < 1e-3
            assert metrics["time/rollout"] > 0 and metrics["time/learn"] > 0

        # Rewards were computed by the reward actors: their own timings name every reward,
        # and re-scoring a rollout in-process gives the numbers the actors returned.
        actor_timings = ray.get(trainer.reward.workers[0].timings.remote())
        assert set(cfg.reward.weights) <= set(actor_timings)
        training_view = trainer.source.view(0, 0)  # group 0 of row 0: its perturbed training view (train.augment)
        # The driver sends (group id, row index); the engine builds the prompt and keeps the group's reward context.
        meta, columns = trainer.rollout.workers[0].generate_columns.remote(GroupBatch.of(0, [0]), seed=1)
        meta = ray.get(meta)
        assert meta.probe[0] == trainer.source.prompt_ids(training_view["prompt"])  # the prompt the driver would build
        batch = StepBatch.of([(meta, columns)])  # the samples stay in the object store
        view = trainer.reference_logprobs(batch, {})
        sample = view[:1].reward_inputs()[0]  # what a reward actor resolves from its shard
        assert sample.prompt == training_view["prompt"] and sample.ref_logprobs  # perplexity is weighted here
        assert sample.label == rows[0]["label"]
        from reward_workers.worker import score_with_pool_timed

        pooled, _ = score_with_pool_timed(trainer.reward.workers, [sample], cfg.reward.timeout_s)
        assert pooled == RewardScorer(cfg.reward).score([sample])

        # The adapter changed: GRPO's last version differs from the SFT start.
        last = cfg.train.steps
        start, end = _safetensors(adapters_dir(cfg.train) / "v0"), _safetensors(adapters_dir(cfg.train) / f"v{last}")
        assert start.keys() == end.keys()
        assert max(float((start[k] - end[k]).abs().max()) for k in start) > 0

        # Sync: for a fixed prompt + completion the rollout engine's logprobs under the new adapter match the
        # learner's, and differ from those under the previous version.
        from transformers import AutoTokenizer

        from contract.chat_tokens import chat_token_ids
        from rl_actors.sequences import encode_completion

        tokenizer = AutoTokenizer.from_pretrained(cfg.model.path)
        pair = [
            (
                chat_token_ids(tokenizer, build_messages(rows[1]["prompt"])),
                encode_completion(tokenizer, render_completion(rows[1]["reference"], rows[1]["label"])),
            )
        ]
        learner_lp = ray.get(trainer.learner.workers[0].logprobs.remote(pair))[0]
        rollout_lp = ray.get(trainer.rollout.workers[0].score.remote(pair))[0]
        assert max(abs(a - b) for a, b in zip(learner_lp, rollout_lp)) < 1e-3
        previous = AdapterSnapshot.from_dir(adapters_dir(cfg.train) / f"v{last - 1}", last - 1)
        ray.get(trainer.rollout.workers[0].load_adapter.remote(previous))
        previous_lp = ray.get(trainer.rollout.workers[0].score.remote(pair))[0]
        assert max(abs(a - b) for a, b in zip(previous_lp, rollout_lp)) > 1e-5
    finally:
        trainer.shutdown()

    # Grounded rollouts (rollout.grounded): each group is sampled under its own training view's evidence grammar, so
    # whatever a sampled completion quotes is text of the line it names.
    from rl_actors.rollout import RolloutEngine

    grounded = RolloutEngine(cfg.model.path, cfg.model, cfg.rollout.model_copy(update={"grounded": True}))
    grounded.load_adapter(AdapterSnapshot.from_dir(adapters_dir(cfg.train) / f"v{last}", last))
    groups = trainer.source.groups(GroupBatch.of(100, range(6)))
    samples = grounded.generate(groups, seed=1)
    assert len(samples) == len(groups) * cfg.rollout.group_size
    prompts = {g.group_id: g.context.prompt for g in groups}
    cited = [check_citations(s.text, prompts[s.group_id]) for s in samples]
    assert sum(map(len, cited)) > 0 and all(c.grounded for sample in cited for c in sample), [s.text for s in samples]
    del grounded

    # `logrl eval` on the held-out split: every test window in every mode, beside the baselines.
    import json

    from cluster.stages import run_eval_stage

    out = Path(cfg.train.output_dir) / "eval"
    evaluation = run_eval_stage(cfg, adapter=str(adapters_dir(cfg.train) / f"v{last}"), out=str(out), mode="all")
    test_ids = {row["id"] for row in load_examples(summary["paths"]["test"])}
    predictions = [json.loads(line) for line in open(out / "predictions.jsonl")]
    for mode in ("reason", "fast", "grounded"):
        assert {p["id"] for p in predictions if p["mode"] == mode} == test_ids  # every sample counts
    assert len(predictions) == 3 * len(test_ids)
    report = (out / "report.md").read_text()
    for name in ("adapter/reason", "adapter/fast", "adapter/grounded", "majority", "keyword", "decision_tree"):
        assert name in report
    # Grounded decoding through vLLM's structured outputs: whatever the model cites is text of the line it names.
    grounded = [p for p in predictions if p["mode"] == "grounded" and p["well_formed"]]
    assert grounded and sum(len(p["citations"]) for p in grounded) >= len(grounded) // 2
    assert all(c["grounded"] for p in grounded for c in p["citations"]), [p["rationale"] for p in grounded]
    assert set(json.loads((out / "metrics.json").read_text())["arms"]) == set(evaluation["metrics"]["arms"])
    # Budget forcing (the quickstart's eval.force_verdict): no rationale is left cut without a verdict; each one its
    # budget cut was closed and asked for the verdict, and the report counts them.
    forced = [p for p in predictions if p["finish_reason"] == "forced"]
    assert all(p["mode"] != "fast" and p["well_formed"] and p["verdict"] in VERDICTS for p in forced), forced
    assert not [p for p in predictions if p["mode"] != "fast" and p["finish_reason"] == "length"]
    assert sum(arm["forced"] for arm in evaluation["metrics"]["arms"].values()) == len(forced)
    # Scores from the verdict token's log-probs, AUCs with intervals beside the baselines', the flip rate on a
    # perturbed copy, the unseen-template slice.
    fast = [p for p in predictions if p["mode"] == "fast"]
    scored = [p for p in fast if p["score"] is not None and p["verdict"]]
    assert len(scored) >= len(fast) - 1  # the greedy verdict agrees with the first token's probability mass
    assert sum((p["score"] >= 0.5) == (p["verdict"] == "anomalous") for p in scored) >= 0.9 * len(scored)
    analysis = evaluation["metrics"]["analysis"]
    assert analysis["all"]["scorers"]["adapter/fast"]["roc_auc"]["value"] is not None
    assert "baseline: domain_cues" in analysis["all"]["scorers"] and "unseen_templates" in analysis
    assert 0 <= evaluation["metrics"]["arms"]["adapter/fast"]["flip_rate"] <= 1
    assert list(out.glob("confusion_*.png")) and (out / "scores.png").stat().st_size > 0
    # `logrl eval --reanalyse`: from the written predictions and baselines refitted on the rebuilt rows, every number
    # comes back; a report written before the thresholded comparison gets it; one whose numbers moved is refused.
    import shutil

    from cluster.config import ConfigError
    from cluster.reanalysis import moved, reanalyse

    kept = [json.loads(line) for line in open(out / "validation.jsonl")]  # the scores each threshold was chosen on
    assert sorted(r["id"] for r in kept) == sorted(row["id"] for row in load_examples(summary["paths"]["validation"]))
    assert {(r["arm"], r["mode"]) for r in kept} == {("adapter", "fast")} and all(r["score"] is not None for r in kept)
    older = Path(cfg.train.output_dir) / "eval-older"
    shutil.copytree(out, older)
    metrics = json.loads((older / "metrics.json").read_text())
    for part in metrics["analysis"].values():
        part.pop("best_baseline_at_threshold")
        assert [block.pop("vs_best_baseline_at_threshold") for block in part["scorers"].values()
                if "vs_best_baseline_at_threshold" in block]  # fmt: skip
    (older / "metrics.json").write_text(json.dumps(metrics))
    again = reanalyse(cfg, str(older))["analysis"]
    assert moved(analysis, again) is None and moved(again, analysis) is None  # the same keys, the same numbers
    assert (older / "report.md").read_text() == report  # the report's text, plots and all, rewritten as eval wrote it
    metrics["analysis"]["all"]["scorers"]["adapter/fast"]["roc_auc"]["value"] -= 0.01
    (older / "metrics.json").write_text(json.dumps(metrics))
    with pytest.raises(ConfigError, match=r"analysis\.all\.scorers\.adapter/fast\.roc_auc\.value does not reproduce"):
        reanalyse(cfg, str(older))
    assert json.loads((older / "metrics.json").read_text()) == metrics  # nothing written
    # A report written before the sentence-embedding baseline gets it with --add-baselines: the same numbers and the
    # same report.md as eval wrote with it.
    written = json.loads((out / "metrics.json").read_text())
    assert "skipped" not in written["baselines"]["embedding_logistic_regression"]
    before = Path(cfg.train.output_dir) / "eval-before-embeddings"
    shutil.copytree(out, before)
    written["baselines"].pop("embedding_logistic_regression")
    for part in written["analysis"].values():
        part["scorers"].pop("baseline: embedding_logistic_regression")
    (before / "metrics.json").write_text(json.dumps(written))
    added, original = reanalyse(cfg, str(before), add_baselines=True), json.loads((out / "metrics.json").read_text())
    assert (
        moved(original["analysis"], added["analysis"]) is None
        and moved(added["analysis"], original["analysis"]) is None
    )
    timing = ("samples_per_s", "latency_s")  # measured again: the verdicts and their scores must match, not the clock
    assert {k: v for k, v in added["baselines"]["embedding_logistic_regression"].items() if k not in timing} == {
        k: v for k, v in original["baselines"]["embedding_logistic_regression"].items() if k not in timing
    }

    def unclocked(text: str) -> list[str]:  # the added baseline's row without its last cell (samples/s)
        prefix = "| baseline: embedding_logistic_regression |"
        return [line.rsplit("|", 2)[0] if line.startswith(prefix) else line for line in text.splitlines()]

    assert unclocked((before / "report.md").read_text()) == unclocked(report)
    from rl_actors.tracking import MlflowRun

    mlflow_run = MlflowRun(cfg.train.output_dir)
    history = mlflow_run.client.get_metric_history(mlflow_run.run_id, "sft/loss")
    assert [m.step for m in history] == list(range(cfg.sft.steps))
    assert mlflow_run.client.get_metric_history(mlflow_run.run_id, "eval/adapter/reason/f1")
    eval_files = {f.path for f in mlflow_run.client.list_artifacts(mlflow_run.run_id, "eval/eval")}
    assert {"eval/eval/report.md", "eval/eval/metrics.json"} <= eval_files

    # Serve the trained adapter: /detect must answer as `logrl eval` did on the same held-out windows (same prompt
    # renderer, adapter and greedy decoding; only batching differs, which may flip a rare token). Compared on windows
    # the evaluated model answered in reasoning mode, since a ~1M-parameter model trained for a minute often does not.
    evaluated = {(p["id"], p["mode"]): p for p in predictions}
    rows = load_examples(summary["paths"]["test"])
    answered = [row for row in rows if evaluated[(row["id"], "reason")]["verdict"] in VERDICTS][:5]
    assert len(answered) >= 3, "at least 3 held-out windows answered in the format in reasoning mode"
    detector = start_serving(cfg, str(adapters_dir(cfg.train) / f"v{last}"))
    try:
        for mode in ("reason", "fast", "grounded"):
            fast, grounded = mode == "fast", mode == "grounded"
            served = [
                detect(detector.url, raw_session_lines(row, live=True), fast=fast, grounded=grounded)
                for row in answered
            ]
            for answer in served:
                assert answer["adapter_version"] == f"v{last}" and answer["mode"] == mode
                assert set(answer) >= {"verdict", "well_formed", "rationale", "templates", "latency_ms"}
            same = sum(a["verdict"] == evaluated[(row["id"], mode)]["verdict"] for a, row in zip(served, answered))
            assert same >= len(answered) - 1, (mode, served)
            if grounded:  # served under the same grammar: every quote is on the line it names
                checked = [check_citations(a["rationale"], row["prompt"]) for a, row in zip(served, answered)]
                assert all(c.grounded for row_checked in checked for c in row_checked), served
        # Windows whose grounded rationale eval had to force: served with serve.force_verdict, they are forced too.
        cut = [row for row in rows if evaluated[(row["id"], "grounded")]["finish_reason"] == "forced"][:2]
        served = [detect(detector.url, raw_session_lines(row, live=True), grounded=True) for row in cut]
        assert all(a["forced"] and a["well_formed"] and a["verdict"] in VERDICTS for a in served), served
        same = sum(a["verdict"] == evaluated[(row["id"], "grounded")]["verdict"] for a, row in zip(served, cut))
        assert same >= len(cut) - 1, served
        test_rows = answered

        client = OpenAI(base_url=f"{detector.url}/v1", api_key="unused")
        chat = client.chat.completions.create(
            model=cfg.serve.adapter_name,
            messages=build_messages(test_rows[0]["prompt"]),
            max_tokens=96,
            temperature=0,
        )
        assert chat.model == cfg.serve.adapter_name and chat.choices[0].message.content
    finally:
        stop_detector(detector)
    assert os.path.exists(Path(cfg.train.output_dir) / "metrics.jsonl")
