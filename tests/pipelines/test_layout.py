"""pipelines/ follows the data path: each folder imports only the folders before it (and config.py), never one after."""

from __future__ import annotations

import ast
from pathlib import Path

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
# The data path, first step first (the README's Layout table lists them in this order).
STEPS = ("reading", "templates", "sessions", "prompts", "building")
BESIDE = {"config"}  # the `data` config section: every step reads it


def _imported_folders(path: Path) -> set[str]:
    """The pipelines subpackages and top-level modules `path` imports (by absolute import)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found |= {name.split(".")[1] for name in names if name.startswith("pipelines.")}
    return found


def test_the_folders_are_the_steps_and_nothing_else_lies_loose():
    folders = {path.name for path in PIPELINES.iterdir() if (path / "__init__.py").is_file()}
    loose = {path.stem for path in PIPELINES.glob("*.py")} - {"__init__"}
    assert folders == set(STEPS)
    assert loose == BESIDE | {"eval_data"}  # eval_data: `logrl eval --data` rows, on top of every step


def test_each_step_imports_only_the_steps_before_it():
    for rank, step in enumerate(STEPS):
        allowed = {*STEPS[: rank + 1], *BESIDE}
        for path in sorted((PIPELINES / step).glob("*.py")):
            later = _imported_folders(path) - allowed
            assert not later, f"pipelines/{step}/{path.name} imports {sorted(later)}, a later step or eval_data"
