"""The cascade's classical first stage, without Ray: a window's drain3 templates against the training split's.

Fit (`fit_classical_stage`) on the train split's windows: per template, how many training lines had it on a line
that carries no anomaly and on one that does (`anomaly_lines`), and the most lines of it one normal window held.
Judge (`ClassicalStage.judge`) a window by its lines' template ids:
- "normal" when every template was seen on at least `min_normal_lines` normal training lines, carried an anomaly
  on at most `max_anomaly_share` of its training lines, and is no more frequent here than in any normal window;
- "anomalous" only with `decide_known_anomalies`, when a template was seen on anomaly lines only;
- otherwise "model": the window is suspicious (a malformed line, an unseen, rare or anomaly-carrying template, an
  unusual count) and the model decides; the reason says which line and why.
`cluster.stages` fits it with the data and saves it beside the miner (`classical_stage.json`); /detect and
`logrl tail --cascade` load it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from pipelines.reading.regex_format import RegexFormat
from pipelines.templates.miner import UNSEEN_ID

STAGE_FILE = "classical_stage.json"
NORMAL, ANOMALOUS, MODEL = "normal", "anomalous", "model"


class StageDecision(NamedTuple):
    decision: str  # NORMAL, ANOMALOUS (decided here) or MODEL (suspicious: the model decides)
    reason: str


@dataclass
class ClassicalStage:
    normal_lines: dict[int, int] = field(default_factory=dict)  # template -> training lines carrying no anomaly
    anomaly_lines: dict[int, int] = field(default_factory=dict)  # template -> training lines carrying an anomaly
    max_normal_count: dict[int, int] = field(default_factory=dict)  # template -> most lines in one normal window
    min_normal_lines: int = 3
    max_anomaly_share: float = 0.05
    decide_known_anomalies: bool = False

    def judge(self, template_ids: Sequence[int | None]) -> StageDecision:
        """What the first stage makes of a window whose lines have these template ids (None: malformed line)."""
        counts = Counter(template_ids)
        known_anomaly = None
        for number, template in enumerate(template_ids, start=1):
            if template is None:
                return StageDecision(MODEL, f"L{number} is not a well-formed log line")
            if template == UNSEEN_ID:
                return StageDecision(MODEL, f"L{number} has a template never seen in training")
            normal, anomalous = self.normal_lines.get(template, 0), self.anomaly_lines.get(template, 0)
            if anomalous and not normal:
                known_anomaly = known_anomaly or number
            elif anomalous > self.max_anomaly_share * (normal + anomalous):
                return StageDecision(MODEL, f"L{number}'s template carried anomalies in {anomalous} training lines")
            elif normal < self.min_normal_lines:
                return StageDecision(MODEL, f"L{number}'s template is rare ({normal} normal training lines)")
            elif counts[template] > self.max_normal_count.get(template, 0):
                return StageDecision(
                    MODEL, f"L{number}'s template occurs {counts[template]} times, more than in any normal window"
                )
        if known_anomaly is not None:
            reason = f"L{known_anomaly}'s template occurred only on anomaly lines in training"
            return StageDecision(ANOMALOUS if self.decide_known_anomalies else MODEL, reason)
        return StageDecision(NORMAL, "every template is common in normal training windows")

    def save(self, path: Path | str) -> Path:
        path = Path(path)
        data = {
            "normal_lines": self.normal_lines,
            "anomaly_lines": self.anomaly_lines,
            "max_normal_count": self.max_normal_count,
            "min_normal_lines": self.min_normal_lines,
            "max_anomaly_share": self.max_anomaly_share,
        }
        path.write_text(json.dumps(data), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path | str, decide_known_anomalies: bool = False) -> ClassicalStage:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        as_ints = {
            key: {int(t): n for t, n in data[key].items()}
            for key in ("normal_lines", "anomaly_lines", "max_normal_count")
        }
        return cls(
            **as_ints,
            min_normal_lines=data["min_normal_lines"],
            max_anomaly_share=data["max_anomaly_share"],
            decide_known_anomalies=decide_known_anomalies,
        )


def fit_classical_stage(
    rows: Iterable[dict], min_normal_lines: int = 3, max_anomaly_share: float = 0.05
) -> ClassicalStage:
    """Count templates over training windows: rows with `template_ids` (per line), `anomaly_lines` (1-based numbers
    of the lines that carry the anomaly) and `label` ("anomalous" or "normal")."""
    stage = ClassicalStage(min_normal_lines=min_normal_lines, max_anomaly_share=max_anomaly_share)
    for row in rows:
        carriers = set(row.get("anomaly_lines") or ())
        counts = Counter(template for template in row["template_ids"] if template is not None)
        for number, template in enumerate(row["template_ids"], start=1):
            if template is None:
                continue
            table = stage.anomaly_lines if number in carriers else stage.normal_lines
            table[template] = table.get(template, 0) + 1
        if row["label"] != ANOMALOUS:
            for template, count in counts.items():
                stage.max_normal_count[template] = max(stage.max_normal_count.get(template, 0), count)
    return stage


_DIGIT = re.compile(r"\d")
# Necessary conditions for the default masking rules (pipelines.templates.masking) to match at all: a cheap test
# skips the regex. Rules are applied in order on the partly masked text, as drain3 does; masks like <NUM> hold none
# of these.
_PRECHECKS: dict[str, Callable[[str], bool]] = {
    r"\bR\d\d-M\d(?:-[A-Za-z0-9]+)*(?::J\d\d-U\d\d)?\b": lambda text: "-M" in text,
    r"blk_-?\d+": lambda text: "blk_" in text,
    r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?::\d+)?\b": lambda text: "." in text,
    r"\b[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){3,}\b": lambda text: ":" in text,
    r"\b0[xX][0-9a-fA-F]+\b": lambda text: "0x" in text or "0X" in text,
    r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b": lambda text: _DIGIT.search(text) is not None,
    r"(?<![A-Za-z0-9_.])[-+]?\d+(?:\.\d+)?(?![A-Za-z0-9_])": lambda text: _DIGIT.search(text) is not None,
}


class FastMasker:
    """drain3's masking (each rule's regex in order, `<NAME>` for a match), skipping a rule whose necessary
    condition fails; rules it does not know always run. The same output as the miner's own masker."""

    def __init__(self, masking: Sequence[Sequence[str]]):
        self._rules = [(re.compile(pattern), f"<{name}>", _PRECHECKS.get(pattern)) for name, pattern in masking]

    def __call__(self, text: str) -> str:
        for regex, mask, precheck in self._rules:
            if precheck is None or precheck(text):
                text = regex.sub(mask, text)
        return text


class LinesStage:
    """The first stage on raw log lines (`logrl tail --cascade`): normalise, parse and match them with the run's
    frozen miner exactly as /detect does, then judge the window. drain3 matches on the masked content only, so
    matches are cached per masked content: exact, and a line whose numbers changed still hits the cache."""

    def __init__(
        self,
        stage: ClassicalStage,
        miner,
        data_format: str,
        cache_size: int = 1 << 16,
        regex: RegexFormat | None = None,
    ):
        """`regex`: format regex's line regex and label rule (the run's data.regex); the other formats take none."""
        from pipelines.reading.log_formats import line_parser

        self.stage, self.data_format = stage, data_format
        self._parse = line_parser(data_format, regex)  # format regex without its data.regex fails here
        self._miner, self._mask = miner, FastMasker(miner.settings["masking"])
        self._cache: dict[str, int] = {}
        self._cache_size = cache_size

    def _template_id(self, content: str) -> int:
        masked = self._mask(content)
        template = self._cache.get(masked)
        if template is None:
            template = self._miner.match(content)[0]
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[masked] = template
        return template

    @classmethod
    def from_data_dir(cls, folder: Path | str, decide_known_anomalies: bool = False) -> LinesStage:
        """The stage a data run saved: `classical_stage.json`, the miner, and the format (with format regex's
        data.regex) from `prompt_settings.json`."""
        from pipelines.prompts.rows import PromptSettings
        from pipelines.templates.miner import LogTemplateMiner

        folder = Path(folder)
        settings = PromptSettings.load(folder)
        stage_file = folder / STAGE_FILE
        if not stage_file.is_file():
            raise FileNotFoundError(f"{stage_file}: no classical stage; `logrl prepare-data` writes it with the data")
        miner = LogTemplateMiner.load(folder / Path(settings.miner_file).name)
        stage = ClassicalStage.load(stage_file, decide_known_anomalies)
        return cls(stage, miner, settings.format, regex=settings.line_regex())

    def template_ids(self, raw_lines: Sequence[str]) -> list[int | None]:
        from pipelines.reading.log_formats import MalformedLine
        from serving.untrusted import normalize_line

        ids: list[int | None] = []
        for raw in raw_lines:
            try:
                content = self._parse(normalize_line(raw))["content"]
            except MalformedLine:
                ids.append(None)
                continue
            ids.append(self._template_id(content))
        return ids

    def judge(self, raw_lines: Sequence[str]) -> StageDecision:
        return self.stage.judge(self.template_ids(raw_lines))
