"""MLflow tracking: config flattening, metric selection, and one real local MLflow run per output folder."""

from __future__ import annotations

import json

from rl_actors.tracking import RUN_FILE, MlflowRun, eval_metrics, flat_params, numeric_metrics


def test_config_sections_become_dotted_string_params():
    params = flat_params({"train": {"steps": 4, "output_dir": "runs/x", "init_adapter": None}, "model": {"t": [1]}})
    assert params == {"train.steps": "4", "train.output_dir": "runs/x", "train.init_adapter": "null", "model.t": "[1]"}
    assert len(flat_params({"a": "x" * 10_000})["a"]) == 6000  # MLflow's param value limit


def test_only_numbers_are_logged_as_metrics_under_the_stage():
    metrics = {"actor/loss": 0.5, "adapter/version": 3, "prompts": [1, 2], "done": True, "name": "x"}
    assert numeric_metrics(metrics, "grpo") == {"grpo/actor/loss": 0.5, "grpo/adapter/version": 3.0}
    assert numeric_metrics({"sft/loss": 2.0}, "sft") == {"sft/loss": 2.0}


def test_eval_headlines_per_arm_and_baseline():
    report = {
        "arms": {"adapter/reason": {"f1": 0.5, "precision": 0.4, "faithful_share": None, "tp": 3}},
        "baselines": {"keyword": {"f1": 0.25}},
    }
    assert eval_metrics(report) == {
        "eval/adapter/reason/f1": 0.5,
        "eval/adapter/reason/precision": 0.4,
        "eval/baseline/keyword/f1": 0.25,
    }


def test_stages_of_one_output_folder_join_one_local_run(tmp_path, capsys):
    first = MlflowRun(tmp_path, experiment="logrl-test")
    first.log_params({"train.steps": "4", "model.lora_rank": "8"})
    first.log_metrics(0, {"sft/loss": 2.0})
    first.log_metrics(1, {"sft/loss": 1.5})
    first.finish()

    second = MlflowRun(tmp_path, experiment="logrl-test")  # e.g. GRPO after SFT, or a resumed run
    assert second.run_id == first.run_id == json.loads((tmp_path / RUN_FILE).read_text())["run_id"]
    second.log_params({"train.steps": "40", "algo.kl_coef": "0.0"})  # steps raised for a resume: kept as first
    assert "train.steps" in capsys.readouterr().out
    adapter = tmp_path / "adapters" / "v1"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text("{}")
    second.log_artifacts(adapter, "adapter/v1")
    second.finish()

    run = second.client.get_run(second.run_id)
    assert run.data.params == {"train.steps": "4", "model.lora_rank": "8", "algo.kl_coef": "0.0"}
    history = second.client.get_metric_history(second.run_id, "sft/loss")
    assert [(m.step, m.value) for m in history] == [(0, 2.0), (1, 1.5)]
    assert [f.path for f in second.client.list_artifacts(second.run_id, "adapter/v1")] == [
        "adapter/v1/adapter_config.json"
    ]
    assert (tmp_path / "mlflow" / "mlflow.db").exists() and run.info.status == "FINISHED"
