"""MLflow beside TensorBoard: one MLflow run per training output folder, which SFT, GRPO, resumes and eval join."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RUN_FILE = "mlflow_run.json"  # in the output folder: which MLflow run (and store) this folder logs into
MAX_PARAM_CHARS = 6000  # MLflow's limit on a param value


def local_store_uri(output_dir: str | Path) -> str:
    """The default store: SQLite in <output_dir>/mlflow (local, no server)."""
    return f"sqlite:///{(Path(output_dir) / 'mlflow' / 'mlflow.db').resolve()}"


def flat_params(sections: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config values as MLflow params: dotted keys, JSON-ish string values cut to MLflow's limit."""
    params: dict[str, str] = {}
    for key, value in sections.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            params |= flat_params(value, f"{name}.")
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            params[name] = text[:MAX_PARAM_CHARS]
    return params


def numeric_metrics(metrics: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The numeric entries (bools excluded) under `prefix/` (once: `sft/loss` stays itself): what MLflow plots."""
    return {
        k if k.startswith(f"{prefix}/") else f"{prefix}/{k}": float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


EVAL_KEYS = ("f1", "precision", "recall", "accuracy", "well_formed", "faithful_share")


def eval_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """`logrl eval`'s headline numbers per arm/mode and baseline, as `eval/<name>/<metric>`."""
    scored = {**report["arms"], **{f"baseline/{name}": value for name, value in report["baselines"].items()}}
    return {
        f"eval/{name}/{key}": float(values[key])
        for name, values in scored.items()
        for key in EVAL_KEYS
        if values.get(key) is not None
    }


class MlflowRun:
    """The MLflow run of one output folder, through MLflow's client API (no global active-run state)."""

    def __init__(self, output_dir: str | Path, uri: str | None = None, experiment: str = "logrl"):
        import mlflow

        out = Path(output_dir)
        self.uri = uri or local_store_uri(out)
        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.client = mlflow.MlflowClient(tracking_uri=self.uri)
        record = out / RUN_FILE
        known = json.loads(record.read_text()) if record.exists() else {}
        if known.get("uri") == self.uri and self._exists(known.get("run_id")):
            self.run_id = known["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            self.run_id = self.client.create_run(self._experiment_id(experiment, out), run_name=out.name).info.run_id
            out.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({"uri": self.uri, "run_id": self.run_id, "experiment": experiment}) + "\n")

    @classmethod
    def of_training(cls, train: Any) -> MlflowRun:
        """The run of a training config's output folder (`TrainConfig`: output_dir, mlflow_uri, mlflow_experiment)."""
        return cls(train.output_dir, train.mlflow_uri, train.mlflow_experiment)

    def _exists(self, run_id: str | None) -> bool:
        from mlflow.exceptions import MlflowException

        if not run_id:
            return False
        try:
            self.client.get_run(run_id)
        except MlflowException:
            return False
        return True

    def _experiment_id(self, name: str, out: Path) -> str:
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        local = self.uri.startswith("sqlite:///")  # artifacts beside the local store, else the server's default
        location = str((out / "mlflow" / "artifacts").resolve()) if local else None
        return self.client.create_experiment(name, artifact_location=location)

    def log_params(self, params: Mapping[str, str]) -> None:
        """Log params not logged yet; one changed since (MLflow refuses to overwrite) is kept and reported."""
        from mlflow.entities import Param

        logged = self.client.get_run(self.run_id).data.params
        changed = sorted(k for k, v in params.items() if k in logged and logged[k] != v)
        if changed:
            print(f"[mlflow] params changed since this run first logged them, kept as first logged: {changed}")
        new = [Param(k, v) for k, v in params.items() if k not in logged]
        for start in range(0, len(new), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=new[start : start + 100])

    def log_metrics(self, step: int, metrics: Mapping[str, float]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, value, now, step) for key, value in metrics.items()]
        for start in range(0, len(entries), 1000):
            self.client.log_batch(self.run_id, metrics=entries[start : start + 1000])

    def log_artifacts(self, folder: str | Path, artifact_path: str) -> None:
        self.client.log_artifacts(self.run_id, str(folder), artifact_path)

    def finish(self) -> None:
        self.client.set_terminated(self.run_id)
