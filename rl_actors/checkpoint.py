"""What a resumable GRPO run saves every K steps and reads back: the pure parts (layout, trainer state, RNGs).

A checkpoint is `<output_dir>/checkpoints/step-<N>/` (N = steps completed) holding the learner's files (adapter,
optimizer and LR-scheduler state, written by the learner ranks) and `trainer_state.json`, written last and
atomically: a folder without it is an interrupted save and is never resumed from.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"step-(\d+)")


@dataclass(frozen=True)
class TrainerState:
    """The driver's side of a checkpoint: enough to continue with step `step` as if never stopped."""

    step: int  # GRPO steps completed; the resumed run's first step is this one
    adapter_version: int  # the adapter the rollout workers held after `step` steps
    sampler: dict  # PromptSampler.state_dict(): no prompt batch replayed or skipped
    rng: dict  # capture_rng() of the driver process


def checkpoint_due(steps_done: int, every: int | None, total_steps: int) -> bool:
    """Whether to checkpoint after `steps_done` steps: every `every` steps and after the last one (None: never)."""
    if every is None or steps_done <= 0:
        return False
    return steps_done % every == 0 or steps_done == total_steps


def checkpoint_dir(root: str | Path, steps_done: int) -> Path:
    return Path(root) / f"step-{steps_done}"


def capture_rng() -> dict:
    """This process's Python and torch (CPU, and CUDA when present) RNG states, JSON-serialisable."""
    version, internal, gauss = random.getstate()
    state = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def restore_rng(state: dict) -> None:
    """Undo everything drawn since `capture_rng`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def write_trainer_state(folder: str | Path, state: TrainerState) -> Path:
    """Write `trainer_state.json` into the checkpoint folder, atomically (it marks the checkpoint complete)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(asdict(state)) + "\n")
    os.replace(tmp, folder / STATE_FILE)
    return folder / STATE_FILE


def read_trainer_state(folder: str | Path) -> TrainerState:
    path = Path(folder) / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{folder} is not a complete checkpoint (no {STATE_FILE})")
    return TrainerState(**json.loads(path.read_text()))


def prune_checkpoints(root: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints, and interrupted saves older than the newest kept."""
    root = Path(root)
    folders = sorted(
        ((int(m.group(1)), path) for path in root.iterdir() if (m := _STEP_DIR.fullmatch(path.name))), reverse=True
    )
    complete = [step for step, path in folders if (path / STATE_FILE).is_file()]
    if not complete:
        return []
    oldest_kept = complete[: max(keep, 1)][-1]
    removed = [path for step, path in folders if step < oldest_kept]
    for path in removed:
        shutil.rmtree(path)
    return removed


def latest_checkpoint(root: str | Path) -> Path | None:
    """The complete checkpoint with the most steps under `root`, or None (interrupted saves are skipped)."""
    root = Path(root)
    if not root.is_dir():
        return None
    complete = [
        (int(m.group(1)), path)
        for path in root.iterdir()
        if (m := _STEP_DIR.fullmatch(path.name)) and (path / STATE_FILE).is_file()
    ]
    return max(complete)[1] if complete else None
