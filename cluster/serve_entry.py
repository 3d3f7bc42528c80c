"""Import path for `serve run` / KubeRay RayService: `cluster.serve_entry:app`, configured by $LOGRL_CONFIG."""

from __future__ import annotations

import os
from pathlib import Path

from cluster.config import load_config
from cluster.environment import apply_defaults
from cluster.stages import detector_args


def build_app():
    """The detector app for the config's (or latest trained) adapter, without deploying it."""
    from pipelines.build_dataset import MINER_STATE_FILE
    from serving.app import build_detector_app

    cfg = load_config(os.environ.get("LOGRL_CONFIG"))
    return build_detector_app(*detector_args(cfg, None, str(Path(cfg.data.output_dir) / MINER_STATE_FILE)))


apply_defaults()
app = build_app() if os.environ.get("LOGRL_CONFIG") else None
