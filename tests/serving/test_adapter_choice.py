"""Choosing an adapter version to switch to: only folders inside the served adapters folder, usable LoRAs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from serving.adapters import AdapterChoiceError, BoardState, available_versions, resolve_adapter


def _adapter(root: Path, name: str, rank: int = 8) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank}))
    return folder


def test_a_version_resolves_to_its_folder(tmp_path):
    _adapter(tmp_path, "adapter-v4")
    info = resolve_adapter(tmp_path, "adapter-v4", "logrl-detector", max_rank=16)
    assert (info.name, info.version, info.rank) == ("logrl-detector", "adapter-v4", 8)
    assert Path(info.path) == (tmp_path / "adapter-v4").resolve()


@pytest.mark.parametrize(
    ("version", "status", "message"),
    [
        ("../outside", 400, "name of an adapter folder"),
        ("/etc", 400, "name of an adapter folder"),
        ("..", 400, "name of an adapter folder"),
        (7, 400, "name of an adapter folder"),
        (None, 400, "name of an adapter folder"),
        ("adapter-v9", 404, "no adapter version 'adapter-v9'"),
        ("not-lora", 422, "not a usable LoRA folder"),
        ("wide", 400, "rank 64 > serve.max_lora_rank 16"),
        ("escape", 400, "resolves outside"),
    ],
)
def test_versions_that_cannot_be_served_are_refused_clearly(tmp_path, version, status, message):
    root = tmp_path / "adapters"
    root.mkdir()
    (root / "not-lora").mkdir()
    _adapter(root, "wide", rank=64)
    (root / "escape").symlink_to(_adapter(tmp_path, "elsewhere"))
    with pytest.raises(AdapterChoiceError, match=message) as err:
        resolve_adapter(root, version, "logrl-detector", max_rank=16)
    assert err.value.status_code == status


def test_available_versions_in_version_order(tmp_path):
    for name in ("adapter-v10", "adapter-v2", "adapter-v1"):
        _adapter(tmp_path, name)
    (tmp_path / "runs.log").write_text("x")
    (tmp_path / "half-written").mkdir()
    assert available_versions(tmp_path) == ["adapter-v1", "adapter-v2", "adapter-v10"]
    assert available_versions(tmp_path / "missing") == []


def test_the_board_counts_each_switch_once():
    board = BoardState("adapter-v1", "/a/v1")
    assert board.current() == (0, "adapter-v1", "/a/v1")
    assert board.post("adapter-v2", "/a/v2") == 1
    assert board.post("adapter-v2", "/a/v2") == 1  # the same choice again is not a new switch
    assert board.post("adapter-v1", "/a/v1") == 2  # switching back is
    assert board.current() == (2, "adapter-v1", "/a/v1")
