"""Adapter identity: `v<N>` names, LoRA ids, version folders and the latest pointer, read and written in one place."""

from __future__ import annotations

from contract.adapter_store import (
    LATEST_FILE,
    adapter_version,
    adapter_versions,
    adapters_dir,
    is_adapter_folder,
    lora_int_id,
    read_latest,
    version_name,
    version_of_lora_int_id,
    version_of_name,
    write_latest,
)


def test_names_and_ids_round_trip():
    assert version_name(7) == "v7" and version_of_name("v7") == 7
    assert version_of_name("adapter-v7") is None and version_of_name("v") is None
    assert {lora_int_id(v) for v in range(5)} == {1, 2, 3, 4, 5}  # vLLM ids start at 1, one per version
    assert all(version_of_lora_int_id(lora_int_id(v)) == v for v in range(5))


def test_version_folders_skip_symlinks_and_other_names(tmp_path):
    for name in ("v0", "v3", "latest", "v4.tmp"):
        (tmp_path / name).mkdir()
    (tmp_path / "v9").symlink_to(tmp_path / "v3")
    assert adapter_versions(tmp_path) == {0: tmp_path / "v0", 3: tmp_path / "v3"}
    assert adapter_versions(tmp_path / "missing") == {}


def test_latest_pointer_round_trip(tmp_path):
    assert read_latest(tmp_path) is None
    folder = adapters_dir(tmp_path) / version_name(4)
    written = write_latest(tmp_path, 4, folder, "grpo")
    assert written == {"version": 4, "name": "v4", "path": str(folder), "stage": "grpo"}
    assert read_latest(tmp_path) == written and (tmp_path / LATEST_FILE).read_text().endswith("\n")


def test_adapter_version_prefers_the_latest_record(tmp_path):
    (tmp_path / "adapters" / "v7").mkdir(parents=True)
    latest = {"version": 9, "path": str(tmp_path / "adapters" / "v7")}
    assert adapter_version(tmp_path / "adapters" / "v7", latest) == 9
    assert adapter_version(tmp_path / "adapters" / "v7") == 7
    assert adapter_version(tmp_path / "my-adapter") == 0


def test_a_peft_folder_is_one_with_its_config(tmp_path):
    assert not is_adapter_folder(tmp_path)
    (tmp_path / "adapter_config.json").write_text("{}")
    assert is_adapter_folder(tmp_path)
