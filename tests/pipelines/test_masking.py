"""drain3 masking rules from a file (`data.masking_file`): the shipped example, custom rules, and bad files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from pipelines.config import DataConfig
from pipelines.templates.masking import DEFAULT_MASKING, masking_rules
from pipelines.templates.miner import LogTemplateMiner

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "configs" / "masking" / "default.yaml"
CORE_LINES = [
    "generating core.2275",
    "generating core.14",
    "generating core.917",
    "ciod: LOGIN chdir(/home/user) failed",
    "generating core.3",
]


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "masking.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_no_file_means_the_built_in_rules():
    assert masking_rules(None) == DEFAULT_MASKING
    assert DataConfig(paths=["x.log"]).masking_file is None


def test_shipped_default_file_is_exactly_the_built_in_rules():
    assert masking_rules(DEFAULT_FILE) == DEFAULT_MASKING
    assert DataConfig(paths=["x.log"], masking_file=str(DEFAULT_FILE)).masking_file == str(DEFAULT_FILE)


def test_json_file_loads_in_order(tmp_path):
    path = _file(tmp_path, '[{"name": "CORE", "pattern": "core\\\\.\\\\d+"}, {"name": "NUM_2", "pattern": "\\\\d+"}]')
    assert masking_rules(path) == (("CORE", r"core\.\d+"), ("NUM_2", r"\d+"))


def test_custom_rule_changes_the_learned_template(tmp_path):
    # The built-in NUM rule leaves `core.2275` alone (a dot before the digits): drain3 only generalises it to <*>.
    built_in = LogTemplateMiner.fit(CORE_LINES)
    assert sorted(built_in.templates().values()) == ["ciod: LOGIN chdir(/home/user) failed", "generating <*>"]

    path = _file(tmp_path, "- name: CORE\n  pattern: 'core\\.\\d+'\n")
    custom = LogTemplateMiner.fit(CORE_LINES, masking=masking_rules(path))
    assert sorted(custom.templates().values()) == ["ciod: LOGIN chdir(/home/user) failed", "generating <CORE>"]
    template_id = custom.match("generating core.2275")[0]
    assert custom.match("generating core.99") == (template_id, "generating <CORE>")
    assert custom.settings["masking"] == [["CORE", r"core\.\d+"]]  # persisted with the miner


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]\n", r"must be a non-empty list"),
        ("name: NUM\npattern: '\\d+'\n", r"must be a non-empty list"),
        ("- [unclosed\n", r"not YAML"),
        (
            "- name: NUM\n  pattern: '\\d+'\n- name: BAD\n  pattern: 'a(b'\n",
            r"entry 1 \(BAD\): pattern is not a regular",
        ),
        ("- name: NUM\n  pattern: '\\d+'\n- name: CORE\n", r"entry 1: needs exactly the keys name and pattern"),
        ("- pattern: '\\d+'\n", r"entry 0: needs exactly the keys name and pattern"),
        ("- name: NUM\n  pattern: '\\d+'\n  flags: i\n", r"entry 0: needs exactly the keys"),
        ("- name: num\n  pattern: '\\d+'\n", r"entry 0: name must be uppercase"),
        ("- name: NO\n  pattern: '\\d+'\n", r"entry 0: name must be uppercase.*got False"),
        ("- name: NUM\n  pattern: 12\n", r"entry 0 \(NUM\): pattern must be a string"),
        ("- name: NUM\n  pattern: '\\d*'\n", r"entry 0 \(NUM\): pattern .* matches the empty string"),
        ("- just a string\n", r"entry 0: needs exactly the keys"),
    ],
)
def test_bad_file_names_the_field_and_the_entry(tmp_path, text, message):
    path = _file(tmp_path, text)
    with pytest.raises(ValueError, match=rf"^data\.masking_file: {re.escape(str(path))}: {message}"):
        masking_rules(path)
    with pytest.raises(ValidationError, match=rf"data\.masking_file: {re.escape(str(path))}: {message}"):
        DataConfig(paths=["x.log"], masking_file=str(path))


def test_missing_file_names_the_field(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ValidationError, match=rf"data\.masking_file: {re.escape(str(missing))}: no such file"):
        DataConfig(paths=["x.log"], masking_file=str(missing))
