"""A quiet console for the long `logrl` commands: everything goes to a log file, the terminal gets one line per phase.

`quiet_console(log_file)` points this process's stdout and stderr (file descriptors 1 and 2, so Ray's and vLLM's
processes started from here, drain3's and every library's logging follow) at the log file, and keeps the terminal
for `say()`. A watcher thread reads the log as it grows and turns the stages' own lines into the console's:
a phase's result lines (`[sft] adapter ...`) are shown, its per-step lines (`[grpo 3] ...`, `[model] pretraining
step 50/200`, `[eval] reason: 16/30 prompts`) become a progress bar. Pure parsing lives in `console_event`.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

_STEP = re.compile(r"^\[(sft|grpo) (\d+)\] ")
_PRETRAIN = re.compile(r"^\[model\] pretraining step (\d+)/(\d+)")
_EVAL = re.compile(r"^\[eval\] (\w+): (\d+)/(\d+) prompts")
_RESULT = re.compile(r"^\[(data|model|sft|train|grpo|eval|serve|base-model)\] ")
_PHASE_NAMES = {"grpo": "train"}

_console: TextIO | None = None  # the terminal while a quiet console is active


@dataclass(frozen=True)
class ConsoleEvent:
    phase: str
    done: int | None = None  # progress within the phase; None: `text` is a line to show
    total: int | None = None
    text: str = ""


def console_event(line: str, totals: dict[str, int]) -> ConsoleEvent | None:
    """What a line of the log means for the console: progress (with the phase's total step count from `totals`,
    e.g. {"sft": 20, "train": 8}), a result line to show, or nothing (None)."""
    if match := _STEP.match(line):
        phase = _PHASE_NAMES.get(match.group(1), match.group(1))
        step = int(match.group(2)) + (phase == "train")  # GRPO steps count from 0
        return ConsoleEvent(phase, step, totals.get(phase))
    if match := _PRETRAIN.match(line):
        return ConsoleEvent("model", int(match.group(1)), int(match.group(2)))
    if match := _EVAL.match(line):
        return ConsoleEvent(f"eval {match.group(1)}", int(match.group(2)), int(match.group(3)))
    if match := _RESULT.match(line):
        return ConsoleEvent(_PHASE_NAMES.get(match.group(1), match.group(1)), text=line.rstrip("\n"))
    return None


def progress_bar(phase: str, done: int, total: int | None, width: int = 24) -> str:
    if not total:
        return f"[{phase}] {done}"
    filled = min(width, round(width * done / total))
    return f"[{phase}] {'#' * filled}{'.' * (width - filled)} {done}/{total}"


def say(text: str) -> None:
    """A line for the user: on the terminal while a quiet console is active, else on stdout."""
    stream = _console or sys.stdout
    stream.write(text + "\n")
    stream.flush()


class _Watcher(threading.Thread):
    """Follows the log file and writes the console's lines."""

    def __init__(self, log_file: Path, console: TextIO, totals: dict[str, int], start: int):
        super().__init__(daemon=True)
        self.log_file, self.console, self.totals, self.offset = log_file, console, totals, start
        self.stop = threading.Event()
        self.tty = console.isatty()
        self._bar = ""  # the progress line on screen, not yet ended by a newline

    def run(self) -> None:
        with self.log_file.open("r", encoding="utf-8", errors="replace") as handle:
            handle.seek(self.offset)
            partial = ""
            while True:
                chunk = handle.readline()
                if chunk:
                    partial += chunk
                    if partial.endswith("\n"):
                        self.show(console_event(partial, self.totals))
                        partial = ""
                    continue
                if self.stop.is_set():
                    break
                self.stop.wait(0.2)
        self.end_bar()

    def show(self, event: ConsoleEvent | None) -> None:
        if event is None:
            return
        if event.done is None:
            self.end_bar()
            self.console.write(event.text + "\n")
        elif self.tty:
            self._bar = progress_bar(event.phase, event.done, event.total)
            self.console.write("\r" + self._bar)
        self.console.flush()

    def end_bar(self) -> None:
        if self._bar:
            self.console.write("\n")
            self._bar = ""
            self.console.flush()


@contextmanager
def quiet_console(log_file: Path, totals: dict[str, int] | None = None) -> Iterator[TextIO]:
    """Send fds 1 and 2 (and so every library, Ray and vLLM process started meanwhile) to `log_file`; yield the
    terminal. On exit the fds point back at the terminal."""
    global _console
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(saved_out), "w", buffering=1)
    target = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    start = os.fstat(target).st_size
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    watcher = _Watcher(log_file, console, totals or {}, start)
    watcher.start()
    _console = console
    try:
        yield console
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        watcher.stop.set()
        watcher.join(timeout=5)
        _console = None
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        console.close()
