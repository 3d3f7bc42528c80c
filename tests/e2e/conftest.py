"""Shared set-up of the end-to-end tests: the quickstart config on the bundled BGL sample, in a scratch folder."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _quickstart_config(out: Path, *overrides: str):
    """configs/quickstart.yaml reading the bundled BGL sample and writing everything under `out`."""
    from cluster.config import load_config

    scratch = [
        f"data.paths=[{REPO / 'data/bgl/BGL_2k.log'}]",
        f"data.output_dir={out / 'data'}",
        f"model.path={out / 'tiny-model'}",
        f"train.output_dir={out}",
        "tiny_model.pretrain_steps=200",  # these tests check the path, not what the model learns: ~1 min less each
    ]
    return load_config(REPO / "configs" / "quickstart.yaml", [*scratch, *overrides])


@pytest.fixture(scope="session")
def quickstart_config():
    """The builder of that config, for module-scoped fixtures."""
    return _quickstart_config
