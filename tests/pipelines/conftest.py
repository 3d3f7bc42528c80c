"""Shared fixtures for pipelines tests: the bundled BGL sample, parsed and templated without Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.log_formats import parse_line
from pipelines.templates import LogTemplateMiner

BGL_SAMPLE = Path(__file__).resolve().parents[2] / "data" / "bgl" / "BGL_2k.log"


@pytest.fixture(scope="session")
def bgl_sample() -> Path:
    return BGL_SAMPLE


@pytest.fixture(scope="session")
def bgl_raw_lines() -> list[str]:
    return BGL_SAMPLE.read_bytes().decode("utf-8").split("\n")


@pytest.fixture(scope="session")
def bgl_miner(bgl_raw_lines: list[str]) -> LogTemplateMiner:
    return LogTemplateMiner.fit(parse_line(text, "bgl")["content"] for text in bgl_raw_lines)


@pytest.fixture(scope="session")
def bgl_lines(bgl_raw_lines: list[str], bgl_miner: LogTemplateMiner) -> list[dict]:
    """Parsed, templated BGL lines in file order, as the Ray pipeline would produce them."""
    lines = []
    for text in bgl_raw_lines:
        line = parse_line(text, "bgl")
        line["template_id"], line["template"] = bgl_miner.match(line["content"])
        lines.append(line)
    return lines
