"""`model.path: smollm2-135m` resolves to the converted folder for training, eval and serving alike."""

from __future__ import annotations

import json

import pytest

from cluster.config import parse_config
from cluster.stages import detector_args, ensure_model
from rl_actors.base_models import MARKER_FILE, SMOLLM2_135M


@pytest.fixture
def converted(tmp_path, monkeypatch):
    """A finished (marker-only) smollm2-135m folder in a private cache, so nothing is downloaded."""
    monkeypatch.setenv("LOGRL_CACHE_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "models" / "smollm2-135m"
    folder.mkdir(parents=True)
    marker = {"name": SMOLLM2_135M.name, "wheel_sha256": SMOLLM2_135M.wheel_sha256}
    (folder / MARKER_FILE).write_text(json.dumps(marker))
    return folder


def _cfg(**model):
    return parse_config({"data": {"paths": ["x.log"]}, "model": {"path": "smollm2-135m", **model}})


def test_registry_name_resolves_to_the_converted_folder(converted):
    cfg = _cfg()
    assert ensure_model(cfg) == str(converted) == cfg.model.path  # every actor now loads the folder
    assert ensure_model(cfg) == str(converted)  # a folder path stays as it is


def test_registry_name_with_build_tiny_is_refused(converted):
    with pytest.raises(ValueError, match="registered base model: set model.build_tiny: false"):
        ensure_model(_cfg(build_tiny=True))


def test_serving_resolves_the_name_too(converted):
    cfg = _cfg()
    cfg.serve.adapter = "some/adapter"
    _, model, adapter, *_ = detector_args(cfg)
    assert (model, adapter) == (str(converted), "some/adapter")
