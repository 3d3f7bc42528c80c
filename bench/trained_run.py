"""A trained run opened for a bench: its config, latest adapter and tokenizer, and a rollout engine on them."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_run(run: Path) -> tuple[Any, dict, Any]:
    """(config, latest adapter record, tokenizer) of a run folder; exits when the run has published no adapter.

    Applies logrl's process defaults first, so call it before importing torch or vLLM."""
    from cluster.config import load_config
    from cluster.environment import apply_defaults

    apply_defaults()
    from transformers import AutoTokenizer

    from contract.adapter_store import read_latest

    cfg = load_config(None, [f"train.output_dir={run}", f"data.output_dir={run / 'data'}"])
    latest = read_latest(run)
    if latest is None:
        raise SystemExit(f"{run}: no published adapter (train into it first)")
    return cfg, latest, AutoTokenizer.from_pretrained(cfg.model.path)


def rollout_engine(cfg: Any, latest: dict, rollout_cfg: Any = None):
    """A rollout engine on the run's model (its `rollout` section unless `rollout_cfg`) with the latest adapter."""
    from rl_actors.adapters import AdapterSnapshot
    from rl_actors.rollout import RolloutEngine

    engine = RolloutEngine(cfg.model.path, cfg.model, rollout_cfg or cfg.rollout)
    engine.load_adapter(AdapterSnapshot.from_dir(latest["path"], latest["version"]))
    return engine
