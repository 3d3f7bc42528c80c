"""contract/ is the bottom layer: every role may import it, and it imports none of them (standard library only)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

CONTRACT = Path(__file__).resolve().parents[2] / "contract"


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_contract_imports_only_itself_and_the_standard_library():
    for path in sorted(CONTRACT.glob("*.py")):
        outside = _imported_roots(path) - {"contract", "__future__"} - set(sys.stdlib_module_names)
        assert not outside, f"{path.name} imports {sorted(outside)}"
