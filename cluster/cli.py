"""The `logrl` command: prepare-data, build-tiny-model, base-model, sft, train, scale, eval, serve, detect, ...."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path

from cluster.config import ConfigError, load_config
from cluster.console import quiet_console, say
from cluster.environment import apply_defaults, apply_process_defaults
from evaluation.config import EVAL_MODE_CHOICES

# Commands that start Ray and run for minutes: quiet by default on a terminal (`--verbose` shows everything).
LONG_COMMANDS = ("prepare-data", "build-tiny-model", "sft", "train", "eval", "serve", "quickstart")


def _config(args: argparse.Namespace):
    cfg = load_config(args.config, args.set)
    apply_defaults(cfg)  # CPU-only vLLM settings follow the config's devices, not this (maybe GPU-less) driver
    return cfg


def cmd_prepare_data(args):
    from cluster.stages import ensure_data

    ensure_data(_config(args), force=True)


def cmd_build_tiny_model(args):
    from cluster.stages import ensure_model

    cfg = _config(args)
    cfg.model.build_tiny = True
    ensure_model(cfg, force=True)


def cmd_base_model(args):
    from rl_actors.base_models import BaseModelError, build_base_model

    started = time.perf_counter()
    try:
        build = build_base_model(args.name, out_dir=args.out)
    except BaseModelError as err:
        raise ConfigError(str(err)) from None
    marker = build.marker
    if build.reused:
        print(f"[base-model] {args.name}: reusing {build.path} (delete it to rebuild)", flush=True)
    else:
        print(
            f"[base-model] {args.name}: {marker['architecture']}, {marker['parameters'] / 1e6:.1f}M parameters, "
            f"{marker['size_bytes'] / 1e6:.0f} MB, written to {build.path} in {time.perf_counter() - started:.0f}s "
            f"({', '.join(f'{k} {v}' for k, v in marker['timings_s'].items())})",
            flush=True,
        )
    print(f"[base-model] greedy check: {marker['verify_prompt']!r} -> {marker['verify_answer']!r}", flush=True)


def cmd_sft(args):
    from cluster.stages import run_sft_stage

    run_sft_stage(_config(args))


def cmd_train(args):
    from cluster.stages import run_train_stage

    run_train_stage(_config(args), resume=args.resume)


def cmd_eval(args):
    from cluster.protocols import parse_budgets, parse_seeds, reanalyse_label_curve, run_label_curve
    from cluster.stages import run_eval_stage

    if args.reanalyse:
        from cluster.reanalysis import reanalyse

        if not args.out or args.adapter or args.no_adapter or args.arm:
            raise ConfigError("--reanalyse needs --out REPORT_DIR and runs no model: no --adapter/--arm")
        kept = "every scorer's own numbers" if args.add_baselines else "every earlier number"
        if args.protocol == "label-curve":
            if args.data or args.limit:
                raise ConfigError(
                    "--reanalyse of a label curve redraws its points from the run's train split: no --data/--limit"
                )
            curve = reanalyse_label_curve(_config(args), args.out, args.add_baselines)
            print(f"[eval] reanalysed the curve in {args.out}: {len(curve['points'])} points ({kept} reproduced)")
            return
        metrics = reanalyse(_config(args), args.out, args.data, args.limit, args.add_baselines)
        print(f"[eval] reanalysed {args.out}: {', '.join(metrics['analysis'])} ({kept} reproduced)")
        return
    if args.add_baselines:
        raise ConfigError("--add-baselines goes with --reanalyse (a new eval fits every configured baseline)")
    if args.protocol == "label-curve":
        if args.data or args.adapter or args.no_adapter or args.arm:
            raise ConfigError(
                "--protocol label-curve trains its own adapters on the run's train split: no --data/--arm"
            )
        cfg = _config(args)
        seeds = parse_seeds(args.curve_seeds, cfg.data.seed)
        run_label_curve(cfg, parse_budgets(args.budgets), args.out, args.curve_epochs, seeds)
        return
    if args.protocol == "cross-system" and not args.data:
        raise ConfigError("--protocol cross-system needs --data FORMAT:PATH of the other system (e.g. templates:x.csv)")
    run_eval_stage(
        _config(args),
        adapter=args.adapter,
        no_adapter=args.no_adapter,
        data=args.data,
        mode=args.mode,
        out=args.out,
        limit=args.limit,
        extra_arms=dict(args.arm),
        protocol=args.protocol,
    )


def _named_path(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{text!r} must look like NAME=ADAPTER_DIR")
    return name, path


def cmd_serve(args):
    from cluster.stages import start_serving
    from serving.launch import stop_detector

    detector = start_serving(_config(args), args.adapter)
    print(
        f"[serve] {detector.url} serving {detector.adapter.name} ({detector.adapter.version}); Ctrl-C stops", flush=True
    )
    signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop: shut down as Ctrl-C does
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        stop_detector(detector)
        print("[serve] stopped", flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def cmd_scale(args):
    """Ask the running GRPO job of this config (its train.output_dir) for N rollout engines."""
    import os

    import ray

    from rl_actors.control import request_scale

    cfg = _config(args)
    if not ray.is_initialized():  # the cluster the job runs on, never a new local one
        ray.init(address=cfg.ray.address or os.environ.get("RAY_ADDRESS") or "auto", log_to_driver=False)
    try:
        status = request_scale(cfg.train.output_dir, args.rollout)
    except (LookupError, ValueError) as err:
        raise ConfigError(str(err)) from None
    print(
        f"[scale] {cfg.train.output_dir}: {status['rollout_engines']} rollout engines now, "
        f"{status['rollout_target']} from the next step",
        flush=True,
    )


def cmd_detect(args):
    from serving.client import detect

    lines = Path(args.file).read_text(encoding="utf-8", errors="replace").splitlines()
    print(json.dumps(detect(args.url, lines, fast=args.fast, grounded=args.grounded), indent=2))


def cmd_tail(args):
    import os

    from serving.tail import TailSettings, TailStopped, tail

    settings = TailSettings(
        window_lines=args.window,
        flush_after_s=args.flush_after,
        concurrency=args.concurrency,
        fast=not args.reason,
        follow=not args.no_follow,
        from_start=not args.from_end,
        show_all=args.all,
        state_dir=Path(args.state) if args.state else None,
        max_spooled=args.max_spooled,
    )
    cache = Path(os.environ.get("LOGRL_CACHE_DIR") or Path.home() / ".cache" / "logrl")
    first_stage = None
    if args.cascade:
        from serving.cascade import LinesStage

        try:
            first_stage = LinesStage.from_data_dir(args.cascade)
        except (FileNotFoundError, ValueError) as err:  # ValueError: bad settings, format regex with no data.regex
            raise ConfigError(f"tail --cascade: {err}") from None
    try:
        summary = tail(args.source, args.url, settings, cache_dir=cache, first_stage=first_stage)
    except KeyboardInterrupt:
        return
    except (TailStopped, FileNotFoundError) as err:
        raise ConfigError(f"tail: {err}") from None
    print(
        f"logrl tail: {summary.lines} lines, {summary.windows} windows judged ({summary.splits} split), "
        f"{summary.classical} decided by the first stage, {summary.anomalous} anomalous, "
        f"{summary.undetermined} undetermined, {summary.failed} failed, "
        f"{summary.retries} retries, {summary.resent} resent from the spool; state in {summary.state_dir}",
        file=sys.stderr,
    )


def cmd_quickstart(args):
    """Everything, end to end: data -> tiny model -> SFT -> GRPO -> eval on the test split -> Serve -> a query."""
    from cluster.stages import ensure_data, run_eval_stage, run_train_stage, start_serving
    from contract.log_formats import LABEL_FIRST_FORMATS
    from evaluation.report import report_table
    from pipelines.building.dataset import load_examples, raw_session_lines
    from serving.client import detect
    from serving.launch import stop_detector

    cfg = _config(args)
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    summary = ensure_data(cfg, force=True)
    phases["data"] = time.perf_counter() - t0
    result = run_train_stage(cfg)
    phases["train (model+sft+grpo)"] = time.perf_counter() - t0 - phases["data"]
    t1 = time.perf_counter()
    evaluation = run_eval_stage(cfg, adapter=result["adapter"]["path"], mode="all")
    phases["eval"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    detector = start_serving(cfg, result["adapter"]["path"])
    phases["serve startup"] = time.perf_counter() - t2
    try:
        row = load_examples(summary["paths"]["test"])[0]
        # Live lines carry no alert label: drop it where the format has one (a regex log is sent as it is). Asked
        # grounded: whatever the rationale quotes is text of the line it names.
        lines = raw_session_lines(row, live=cfg.data.format in LABEL_FIRST_FORMATS)
        answer = detect(detector.url, lines, grounded=True)
    finally:
        stop_detector(detector)
    test = summary["splits"]["test"]
    held_out = f"{test['sessions']} windows, {test['anomalous']} anomalous"
    say(f"\n=== logrl quickstart: the trained detector on the held-out test split ({held_out}) ===")
    say(report_table(evaluation["metrics"]))
    say(f"report, plots, every prediction: {evaluation['out']}")
    say(f"adapter: {result['adapter']['path']}")
    say(f"metrics: {Path(result['log']) / 'metrics.jsonl'}  TensorBoard: {Path(result['log']) / 'tensorboard'}")
    say("phases: " + ", ".join(f"{k} {v:.0f}s" for k, v in phases.items()))
    say(f"/detect on held-out window {row['id']} (true label {row['label']}): {json.dumps(answer)}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="logrl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {
        "prepare-data": (cmd_prepare_data, "Ray Data + drain3: logs -> labelled prompt sessions"),
        "build-tiny-model": (cmd_build_tiny_model, "train a BPE tokenizer and save a tiny Llama"),
        "base-model": (cmd_base_model, "fetch and convert a registered pretrained base (e.g. smollm2-135m)"),
        "sft": (cmd_sft, "LoRA SFT warm start on teacher rationales (DeepSpeed learner)"),
        "train": (cmd_train, "GRPO: vLLM rollouts, reward actors, DeepSpeed LoRA learner"),
        "eval": (cmd_eval, "evaluate adapters (reasoning, fast, grounded mode) against baselines; writes a report"),
        "serve": (cmd_serve, "Ray Serve: OpenAI API + /detect for the trained adapter"),
        "scale": (cmd_scale, "add or remove rollout engines of a running GRPO job (from its next step)"),
        "detect": (cmd_detect, "send a log file to a running /detect endpoint"),
        "tail": (cmd_tail, "follow a growing log (or stdin) and print anomalous windows as they happen"),
        "quickstart": (cmd_quickstart, "the whole path, end to end, on the bundled data"),
    }
    for name, (func, help_text) in commands.items():
        cmd = sub.add_parser(name, help=help_text)
        cmd.set_defaults(func=func)
        if name not in ("detect", "tail", "base-model"):
            cmd.add_argument("--config", help="YAML config (default: configs/quickstart.yaml)")
            cmd.add_argument(
                "--set", action="append", default=[], metavar="KEY=VALUE", help="override, e.g. train.steps=2"
            )
        if name in LONG_COMMANDS:
            loud = cmd.add_mutually_exclusive_group()
            loud.add_argument(
                "--quiet",
                action="store_true",
                default=None,
                help="one line per phase; Ray, vLLM and library output to <train.output_dir>/logs/ (default on a "
                "terminal)",
            )
            loud.add_argument("--verbose", action="store_false", dest="quiet", help="everything on the console")
    sub.choices["serve"].add_argument("--adapter", help="adapter folder (default: the latest trained)")
    sub.choices["scale"].add_argument("--rollout", type=_positive_int, required=True, help="rollout engines wanted")
    sub.choices["train"].add_argument(
        "--resume", action="store_true", help="continue from the newest complete checkpoint of train.output_dir"
    )
    add_eval_arguments(sub.choices["eval"])
    base_cmd = sub.choices["base-model"]
    base_cmd.add_argument("name", help="registered base model (smollm2-135m)")
    base_cmd.add_argument("--out", help="folder to write (default: .cache/models/NAME)")
    detect_cmd = sub.choices["detect"]
    detect_cmd.add_argument("file", help="a file of raw log lines")
    detect_cmd.add_argument("--url", default="http://127.0.0.1:8000", help="detector base URL")
    detect_cmd.add_argument("--fast", action="store_true", help="answer-first fast mode")
    detect_cmd.add_argument(
        "--grounded",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="reasoning mode decoded so that every quote is text of the line it names (default: the server's)",
    )
    tail_cmd = sub.choices["tail"]
    tail_cmd.add_argument("source", help="a log file to follow, or - for stdin")
    tail_cmd.add_argument("--url", default="http://127.0.0.1:8000", help="detector base URL ($LOGRL_API_KEY: its key)")
    tail_cmd.add_argument("--window", type=_positive_int, default=20, help="raw lines per judged window")
    tail_cmd.add_argument("--flush-after", type=float, default=2.0, help="judge a partial window after N quiet s")
    tail_cmd.add_argument("--concurrency", type=_positive_int, default=4, help="windows in flight at most")
    tail_cmd.add_argument("--reason", action="store_true", help="reasoning mode (default: answer-first fast mode)")
    tail_cmd.add_argument("--no-follow", action="store_true", help="stop at the end of the file")
    tail_cmd.add_argument(
        "--from-end", action="store_true", help="with no saved position: only lines appended from now on"
    )
    tail_cmd.add_argument(
        "--all", action="store_true", help="print every window's verdict, not only anomalous and undetermined ones"
    )
    tail_cmd.add_argument(
        "--state",
        help="folder for the spool and the saved position (default: one per file under ~/.cache/logrl/tail; "
        "a temporary one for stdin)",
    )
    tail_cmd.add_argument(
        "--max-spooled", type=_positive_int, default=2000, help="windows waiting for an answer before reading pauses"
    )
    tail_cmd.add_argument(
        "--cascade",
        metavar="DATA_DIR",
        help="judge windows with the run's classical first stage here (its data folder: miner, "
        "classical_stage.json, prompt_settings.json with the format and, for format regex, its data.regex) and send "
        "only suspicious ones to /detect",
    )
    return parser


def add_eval_arguments(cmd: argparse.ArgumentParser) -> None:
    """Options of `logrl eval`."""
    which = cmd.add_mutually_exclusive_group()
    which.add_argument("--adapter", help="adapter folder (default: the run's latest)")
    which.add_argument("--no-adapter", action="store_true", help="evaluate the base model (arm 'base')")
    cmd.add_argument(
        "--arm",
        action="append",
        default=[],
        type=_named_path,
        metavar="NAME=ADAPTER_DIR",
        help="another adapter to compare in the same report (repeatable)",
    )
    cmd.add_argument(
        "--data",
        metavar="FORMAT:PATH[,LABELS_PATH]",
        help="evaluate these logs instead of the prepared test split; FORMAT is any format prepare-data reads "
        "(hdfs and loglead_hdfs add ,LABELS_PATH); regex reads PATH with the config's data.regex",
    )
    cmd.add_argument(
        "--mode",
        choices=list(EVAL_MODE_CHOICES),
        default="both",
        help="completion mode(s): both = reason + fast; grounded = the reasoning prompt decoded so that every quote "
        "is text of the line it names; all = the three",
    )
    cmd.add_argument("--out", help="report folder (default: <train.output_dir>/eval)")
    cmd.add_argument("--limit", type=_positive_int, help="evaluate a seeded sample of N rows with the same label mix")
    cmd.add_argument(
        "--protocol",
        choices=["split", "cross-system", "label-curve"],
        default="split",
        help="split: the run's test split (or --data); cross-system: --data is another system, baselines fit on "
        "this run's only; label-curve: SFT and evaluate on subsets of the train split (--budgets)",
    )
    cmd.add_argument(
        "--reanalyse",
        action="store_true",
        help="recompute the analysis of the report in --out from its predictions (no model runs; give the config, "
        "--data and --limit it was written with; with --protocol label-curve, every point of the curve in --out): "
        "every earlier number must reproduce, newer comparisons are added",
    )
    cmd.add_argument(
        "--add-baselines",
        action="store_true",
        help="with --reanalyse: configured baselines the report lacks join it (each scorer's own numbers must "
        "reproduce; comparisons with the best baseline are recomputed)",
    )
    cmd.add_argument("--budgets", default="25,50,100,200,all", help="label-curve: labelled rows per point")
    cmd.add_argument(
        "--curve-epochs", type=float, default=4.0, help="label-curve: SFT passes over each subset (capped at sft.steps)"
    )
    cmd.add_argument(
        "--curve-seeds",
        help="label-curve: subset seeds, e.g. 0,1,2 (each budget drawn, trained and scored once per seed; the "
        "curve shows the mean and spread); default: the data seed",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    apply_process_defaults()
    try:
        if getattr(args, "quiet", False) is None:
            args.quiet = sys.stdout.isatty()
        if getattr(args, "quiet", False):
            return _run_quietly(args)
        args.func(args)
    except (ConfigError, FileNotFoundError) as err:  # input and config errors: one line naming the file or field
        print(f"logrl: {err}", file=sys.stderr)
        return 2
    return 0


def _stop_ray() -> None:
    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            ray.shutdown()


def _run_quietly(args: argparse.Namespace) -> int:
    """Run a long command with its output in a log file under the run folder and one line per phase here."""
    import traceback

    cfg = _config(args)  # a config error is one line, before anything starts
    log = Path(cfg.train.output_dir) / "logs" / f"{args.command}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    say(f"[logrl] {args.command}: Ray, vLLM and library output go to {log}")
    with quiet_console(log, {"sft": cfg.sft.steps, "train": cfg.train.steps}):
        try:
            args.func(args)
            _stop_ray()  # its shutdown messages go to the log too
            return 0
        except (ConfigError, FileNotFoundError, KeyboardInterrupt):
            raise
        except Exception as err:
            traceback.print_exc()  # into the log
            failure = f"logrl {args.command} failed: {type(err).__name__}: {err} (traceback in {log})"
    print(failure, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
