"""The quiet CLI: what the console shows of a command's log, the log file taking every process's output, and input
errors as one line before any Ray instance starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cluster.console import ConsoleEvent, console_event, progress_bar

REPO_ROOT = Path(__file__).resolve().parents[2]
TOTALS = {"sft": 20, "train": 8}


def test_step_lines_become_progress_and_result_lines_are_shown():
    assert console_event("[sft 3] loss 1.2 lr 0.005\n", TOTALS) == ConsoleEvent("sft", 3, 20)
    assert console_event("[grpo 0] reward 0.4\n", TOTALS) == ConsoleEvent("train", 1, 8)  # GRPO counts from 0
    assert console_event("[model] pretraining step 50/200, loss 3.1\n", TOTALS) == ConsoleEvent("model", 50, 200)
    assert console_event("[eval] reason: 16/30 prompts\n", TOTALS) == ConsoleEvent("eval reason", 16, 30)
    shown = console_event("[sft] adapter runs/q/adapters/v0 (102s)\n", TOTALS)
    assert shown == ConsoleEvent("sft", text="[sft] adapter runs/q/adapters/v0 (102s)")
    for noise in ("INFO worker.py:2038 -- Started a local Ray instance.", "(raylet) [W] numa", "data summary: {}"):
        assert console_event(noise, TOTALS) is None
    assert progress_bar("train", 2, 8, width=8) == "[train] ##...... 2/8"


def test_a_quiet_console_sends_every_process_output_to_the_log(tmp_path):
    log = tmp_path / "run" / "logs" / "cmd.log"
    script = f"""
import subprocess, sys, time
from pathlib import Path
from cluster.console import quiet_console, say
with quiet_console(Path({str(log)!r}), {{"sft": 2}}):
    print("[sft 0] loss 2.0", flush=True)
    subprocess.run([sys.executable, "-c", "import sys; print('child noise'); print('child error', file=sys.stderr)"])
    print("a library warning", file=sys.stderr, flush=True)
    print("[sft] adapter runs/x/v0", flush=True)
    time.sleep(0.6)  # the watcher polls the log every 0.2 s
    say("the eval table")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[sft] adapter runs/x/v0", "the eval table"]  # no progress bar off a tty
    assert done.stderr == ""
    logged = log.read_text()
    for text in ("[sft 0] loss 2.0", "child noise", "child error", "a library warning", "[sft] adapter runs/x/v0"):
        assert text in logged


def test_a_binary_input_file_is_one_line_before_ray_starts(tmp_path, capsys):
    import ray

    from cluster.cli import main

    binary = tmp_path / "events.bin"
    binary.write_bytes(bytes(range(256)) * 64)
    argv = ["prepare-data", "--set", f"data.paths=[{binary}]", "--set", f"data.output_dir={tmp_path / 'data'}"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("logrl: data.paths") and str(binary) in err
    assert "Traceback" not in err and not ray.is_initialized()
    missing = ["prepare-data", "--set", f"data.paths=[{tmp_path / 'nope.log'}]"]
    assert main(missing) == 2 and "no such file" in capsys.readouterr().err
    assert not ray.is_initialized()
