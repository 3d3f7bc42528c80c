"""`logrl eval`: argument parsing, the arms it resolves, and the eval config section."""

from __future__ import annotations

import json

import pytest

from cluster import cli
from cluster.config import ConfigError, parse_config


def _raw(**sections):
    raw = {"data": {"paths": ["x.log"]}, "model": {"path": "m"}}
    raw.update(sections)
    return raw


def test_eval_arguments_reach_the_stage(monkeypatch, tmp_path):
    seen = {}
    monkeypatch.setattr("cluster.stages.run_eval_stage", lambda cfg, **kw: seen.update(kw, cfg=cfg))
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(_raw()))
    argv = [
        "eval",
        "--config",
        str(config),
        "--no-adapter",
        "--data",
        "hdfs:2k",
        "--mode",
        "fast",
        "--limit",
        "5",
        "--out",
        "o",
    ]
    argv += ["--arm", "sft=runs/a/adapters/v0", "--arm", "grpo=runs/a/adapters/v8", "--set", "eval.batch_size=4"]
    assert cli.main(argv) == 0
    assert seen.pop("cfg").eval.batch_size == 4
    assert seen == {
        "adapter": None,
        "no_adapter": True,
        "data": "hdfs:2k",
        "mode": "fast",
        "out": "o",
        "limit": 5,
        "extra_arms": {"sft": "runs/a/adapters/v0", "grpo": "runs/a/adapters/v8"},
        "protocol": "split",
    }


def test_protocols_check_their_arguments_before_any_work(monkeypatch, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(_raw()))
    curve = {}
    monkeypatch.setattr(
        "cluster.protocols.run_label_curve",
        lambda cfg, budgets, out, epochs, seeds: curve.update(b=budgets, s=seeds),
    )
    assert cli.main(["eval", "--config", str(config), "--protocol", "cross-system"]) == 2
    assert "needs --data" in capsys.readouterr().err
    assert cli.main(["eval", "--config", str(config), "--protocol", "label-curve", "--data", "bgl:x"]) == 2
    assert cli.main(["eval", "--config", str(config), "--protocol", "label-curve", "--budgets", "25,x"]) == 2
    assert cli.main(["eval", "--config", str(config), "--protocol", "label-curve", "--budgets", "10,all"]) == 0
    assert curve == {"b": [10, None], "s": [0]}  # one subset per budget: the data seed's
    assert cli.main(["eval", "--config", str(config), "--protocol", "label-curve", "--curve-seeds", "0,x"]) == 2
    assert "--curve-seeds: 'x'" in capsys.readouterr().err
    assert cli.main(["eval", "--config", str(config), "--protocol", "label-curve", "--curve-seeds", "2,0,2"]) == 0
    assert curve["s"] == [2, 0]


def test_a_regex_data_spec_needs_the_configs_data_regex(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(_raw()))  # format bgl: no data.regex
    argv = ["eval", "--config", str(config), "--no-adapter", "--data", "regex:app.log"]
    assert cli.main(argv) == 2  # refused before the data or any model is touched
    assert "--data 'regex:app.log': format regex needs its line regex: set data.regex" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("choice", "modes"),
    [("both", ("reason", "fast")), ("grounded", ("grounded",)), ("all", ("reason", "fast", "grounded"))],
)
def test_eval_mode_choices_name_the_modes_they_run(choice, modes):
    from contract.completion_format import MODES
    from evaluation.config import EVAL_MODE_CHOICES

    assert cli.build_parser().parse_args(["eval", "--mode", choice]).mode == choice
    assert EVAL_MODE_CHOICES[choice] == modes and set(modes) <= set(MODES)


def test_eval_defaults():
    args = cli.build_parser().parse_args(["eval"])
    assert (args.adapter, args.no_adapter, args.data, args.mode, args.out, args.limit, args.arm) == (
        None,
        False,
        None,
        "both",
        None,
        None,
        [],
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "--adapter", "a", "--no-adapter"],
        ["eval", "--mode", "slow"],
        ["eval", "--limit", "0"],
        ["eval", "--arm", "no-equals-sign"],
    ],
)
def test_eval_bad_arguments_exit(argv):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(argv)


def test_eval_arms(tmp_path):
    from cluster.stages import eval_arms

    cfg = parse_config(_raw(train={"output_dir": str(tmp_path)}))
    with pytest.raises(FileNotFoundError, match="no adapter to evaluate"):
        eval_arms(cfg)
    (tmp_path / "adapters" / "v4").mkdir(parents=True)
    latest = {"version": 4, "name": "v4", "path": str(tmp_path / "adapters" / "v4"), "stage": "grpo"}
    (tmp_path / "latest_adapter.json").write_text(json.dumps(latest))
    (arm,) = eval_arms(cfg)
    assert (arm.name, arm.adapter_path, arm.adapter_version) == ("adapter", latest["path"], 4)
    base, sft = eval_arms(cfg, no_adapter=True, extra_arms={"sft": str(tmp_path / "adapters" / "v0")})
    assert (base.name, base.adapter_path) == ("base", None)
    assert (sft.name, sft.adapter_version) == ("sft", 0)
    (only,) = eval_arms(cfg, extra_arms={"sft+grpo": latest["path"]})  # named arms replace the default one
    assert only.name == "sft+grpo"
    with pytest.raises(ValueError, match="distinct"):
        eval_arms(cfg, adapter=latest["path"], extra_arms={"adapter": "x"})


def test_eval_config_section():
    cfg = parse_config(_raw())
    assert "fatal" in cfg.eval.keywords and cfg.eval.fast_max_new_tokens is None  # None: measured on the tokenizer
    with pytest.raises(ConfigError, match=r"eval\.baselines\.0"):
        parse_config(_raw(eval={"baselines": ["svm"]}))


def test_reanalyse_refuses_what_would_run_a_model_and_needs_a_report(monkeypatch, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps(_raw()))
    base = ["eval", "--config", str(config), "--reanalyse"]
    for extra in ([], ["--out", "o", "--adapter", "a"], ["--protocol", "label-curve"]):
        assert cli.main(base + extra) == 2
        assert "--reanalyse needs --out REPORT_DIR and runs no model" in capsys.readouterr().err
    assert cli.main(base + ["--out", "o", "--protocol", "label-curve", "--data", "bgl:x"]) == 2
    assert "redraws its points from the run's train split" in capsys.readouterr().err
    assert cli.main(base + ["--out", str(tmp_path / "none")]) == 2
    assert "metrics.json does not exist (is --out a report folder?)" in capsys.readouterr().err
    seen = {}
    monkeypatch.setattr(
        "cluster.reanalysis.reanalyse",
        lambda cfg, out, data, limit, add: (
            seen.update(out=out, data=data, limit=limit, add=add) or {"analysis": {"all": {}}}
        ),
    )
    assert cli.main(base + ["--out", "r", "--data", "templates:x.csv", "--limit", "7"]) == 0
    assert seen == {"out": "r", "data": "templates:x.csv", "limit": 7, "add": False}
    assert cli.main(base + ["--out", "r", "--add-baselines"]) == 0 and seen["add"] is True
    curves = {}
    monkeypatch.setattr(
        "cluster.protocols.reanalyse_label_curve",
        lambda cfg, out, add: curves.update(out=out, add=add) or {"points": [{}, {}]},
    )
    assert cli.main(base + ["--out", "c", "--protocol", "label-curve", "--add-baselines"]) == 0
    assert curves == {"out": "c", "add": True} and "2 points" in capsys.readouterr().out
    assert cli.main(["eval", "--config", str(config), "--out", "r", "--add-baselines"]) == 2
    assert "--add-baselines goes with --reanalyse" in capsys.readouterr().err
