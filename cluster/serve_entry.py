"""Import path for `serve run` / KubeRay RayService: `cluster.serve_entry:app`, configured by $LOGRL_CONFIG."""

from __future__ import annotations

import os

from cluster.config import load_config
from cluster.environment import apply_defaults
from cluster.stages import detector_args


def build_app():
    """The detector app for the config's (or latest trained) adapter, without deploying it."""
    from serving.app import build_detector_app

    cfg = load_config(os.environ.get("LOGRL_CONFIG"))
    apply_defaults(cfg)  # vLLM's CPU settings only when the config's replicas reserve no GPU
    return build_detector_app(*detector_args(cfg))


app = build_app() if os.environ.get("LOGRL_CONFIG") else None
