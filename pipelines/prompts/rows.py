"""Sessions -> prompt rows, and the prompt settings a data run persists so evaluation renders exactly alike."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from contract.log_formats import BLOCK_FORMATS, TEMPLATES_FORMAT
from pipelines.prompts.render import render_window, shown_line_numbers
from pipelines.prompts.teacher import Teacher
from pipelines.reading.regex_format import RegexFormat, regex_format_from_dict
from pipelines.sessions.grouping import (
    Session,
    anomaly_lines,
    block_sessions,
    fixed_windows,
    line_windows,
    order_by_time,
    session_label,
    time_windows,
)
from pipelines.sessions.splits import SPLITS

PROMPT_SETTINGS_FILE = "prompt_settings.json"
# The fields of every train/test/eval row, in order (baselines and `logrl eval` read these).
ROW_FIELDS = (
    "id",
    "prompt",
    "label",
    "reference",
    "split",
    "source",
    "start_offset",
    "n_lines",
    "templates",
    "template_ids",
    "anomaly_lines",
)
TOKEN_COUNTER = "ceil(utf8_bytes / 3)"  # what `estimate_tokens` computes; serving renders with the same


@dataclass
class PromptSettings:
    """How a run's prompts were rendered; `anomaly_templates` is None where line labels mark the anomaly lines."""

    format: str
    session: str
    window_size: int
    max_prompt_tokens: int
    miner_file: str
    anomaly_templates: dict[int, str] | None = None
    expected_templates: dict[int, str] | None = None
    token_counter: str = TOKEN_COUNTER
    time_window_s: int | None = None  # set for session: time (then window_size does not apply)
    regex: dict | None = None  # format regex: its data.regex (RegexFormat fields), so a data folder can read lines

    def line_regex(self) -> RegexFormat | None:
        """The run's data.regex (format regex), or None."""
        return regex_format_from_dict(self.regex) if self.regex else None

    def save(self, directory: str | Path) -> Path:
        """Write `prompt_settings.json` into `directory`; returns its path."""
        payload = asdict(self)
        payload["anomaly_lines_from"] = "line_labels" if self.anomaly_templates is None else "anomaly_templates"
        for key in ("anomaly_templates", "expected_templates"):
            payload[key] = [{"id": template_id, "template": text} for template_id, text in (payload[key] or {}).items()]
        path = Path(directory) / PROMPT_SETTINGS_FILE
        path.write_text(json.dumps(payload, indent=2) + "\n")
        return path

    @classmethod
    def load(cls, directory: str | Path) -> PromptSettings:
        """Read the settings a data run wrote into `directory`."""
        path = Path(directory) / PROMPT_SETTINGS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no prompt settings; run `logrl prepare-data` for this run first")
        payload = json.loads(path.read_text())
        try:
            templates = {int(item["id"]): item["template"] for item in payload["anomaly_templates"]}
            by_labels = payload["anomaly_lines_from"] == "line_labels"
            return cls(
                format=payload["format"],
                session=payload["session"],
                window_size=int(payload["window_size"]),
                max_prompt_tokens=int(payload["max_prompt_tokens"]),
                miner_file=payload["miner_file"],
                anomaly_templates=None if by_labels else templates,
                expected_templates={int(i["id"]): i["template"] for i in payload.get("expected_templates", [])},
                token_counter=payload.get("token_counter", TOKEN_COUNTER),
                time_window_s=payload.get("time_window_s"),
                regex=payload.get("regex"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: bad prompt settings ({type(err).__name__}: {err})") from None


def shown_as_itself(record: dict) -> dict:
    """A template-CSV row is already a template: the prompt shows its own text, not drain3's coarser merge of it."""
    record["template"] = record["content"]
    return record


def window_size_for(fmt: str, window_size: int) -> int:
    """Lines per fixed session: a template CSV row is a session of its own."""
    return 1 if fmt == TEMPLATES_FORMAT else window_size


def make_sessions(
    rows: Iterable[dict],
    fmt: str,
    window_size: int,
    n_lines: int,
    labels: dict[str, str] | None = None,
    time_window_s: int | None = None,
) -> tuple[Iterable[Session], int, int]:
    """Sessions in time order, their number (known up front, so a split can stream), and unlabelled blocks.

    Text logs: windows of line numbers (`grouping.line_windows`, rows need `line`); template rows: one session
    each; both stream. Blocks come as a list, each block's lines by time and blocks by their first line.
    """
    if time_window_s is not None:
        timed = [
            Session(f"t{start}", lines, session_label(lines)) for start, lines in time_windows(rows, time_window_s)
        ]
        return timed, len(timed), 0
    if fmt == TEMPLATES_FORMAT:
        sessions = (Session(f"w{i:06d}", lines, session_label(lines)) for i, lines in enumerate(fixed_windows(rows, 1)))
        return sessions, n_lines, 0
    if fmt not in BLOCK_FORMATS:
        windows = line_windows(rows, window_size)
        sessions = (Session(f"w{n:06d}", lines, session_label(lines)) for n, lines in windows)
        return sessions, math.ceil(n_lines / window_size), 0
    blocks = order_by_time(block_sessions(rows, labels or {}))
    labelled = [block for block in blocks if block.label is not None]
    return labelled, len(labelled), len(blocks) - len(labelled)  # unlabelled blocks are counted, not lost


def split_counts() -> dict:
    """Per split: sessions, anomalous ones, and anomalous ones whose anomaly lines are missing or not shown."""
    keys = ("sessions", "anomalous", "anomalous_without_anomaly_lines", "anomalous_with_anomaly_lines_hidden")
    return {split: dict.fromkeys(keys, 0) for split in SPLITS}


def tally_row(counts: dict, row: dict) -> None:
    """Count a written row: anomalous ones with no anomaly line at all, or with none of them shown."""
    counts["sessions"] += 1
    if row["label"] != "anomalous":
        return
    counts["anomalous"] += 1
    if not row["anomaly_lines"]:
        counts["anomalous_without_anomaly_lines"] += 1
    elif not set(row["anomaly_lines"]) & shown_line_numbers(row["prompt"]):
        counts["anomalous_with_anomaly_lines_hidden"] += 1


def prompt_row(session: Session, split: str, max_prompt_tokens: int, teacher: Teacher) -> dict:
    """One output row: the rendered prompt (never the labels), the teacher's rationale, and the anomaly lines."""
    prompt = render_window(session.lines, max_prompt_tokens)
    first = session.lines[0]
    return {
        "id": session.id,
        "prompt": prompt,
        "label": session.label,
        "reference": teacher.rationale(session.lines, session.label, prompt),
        "split": split,
        "source": first["source"],
        "start_offset": first["offset"],
        "n_lines": len(session.lines),
        "templates": list(dict.fromkeys(line["template"] for line in session.lines)),
        "template_ids": [line["template_id"] for line in session.lines],
        "anomaly_lines": anomaly_lines(session.lines),
    }


def rows_in_process(
    path: str | Path,
    data_format: str,
    window_lines: int,
    max_prompt_tokens: int,
    teacher: Teacher | None = None,
    regex: RegexFormat | None = None,
) -> list[dict]:
    """Prompt rows of one small log file, rendered as the Ray Data pipeline renders them, in this process.

    For tests and benches on the bundled samples: the miner is fitted on the whole file, every row is in split
    "train" with the rationale of `teacher` (default: the rule teacher); `regex` is format regex's data.regex.
    Real corpora go through `building.dataset`.
    """
    from pipelines.prompts.teacher import RuleTeacher
    from pipelines.reading.log_formats import line_parser
    from pipelines.templates.miner import LogTemplateMiner

    path = Path(path)
    raw = path.read_text(encoding="utf-8").split("\n")
    parse = line_parser(data_format, regex)
    lines = [dict(parse(text), source=path.name, offset=i, line=i) for i, text in enumerate(raw) if text]
    miner = LogTemplateMiner.fit(line["content"] for line in lines)
    for line in lines:
        line["template_id"], line["template"] = miner.match(line["content"])
    sessions, _, _ = make_sessions(lines, data_format, window_lines, len(lines))
    return [prompt_row(session, "train", max_prompt_tokens, teacher or RuleTeacher()) for session in sessions]
