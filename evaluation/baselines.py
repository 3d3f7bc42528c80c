"""Classical baselines fit on the train split: majority class, keyword rule, drain3 event counts + LR / tree."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evaluation.config import EvalConfig
from evaluation.metrics import NEGATIVE, POSITIVE

Predictor = Callable[[Sequence[dict]], list[str]]


class BaselineUnavailable(ValueError):
    """A baseline that cannot be fit on this train split; the report says why instead of scoring it."""


@dataclass
class BaselineResult:
    """One baseline's verdicts on the evaluated rows (None when it was skipped, with the reason)."""

    name: str
    verdicts: list[str] | None
    elapsed_s: float | None = None  # prediction wall time (fitting excluded)
    skipped: str | None = None


def fit_majority(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """Always the train split's most common label (ties go to anomalous, the class that must not be missed)."""
    counts = Counter(row["label"] for row in train)
    if not counts:
        raise BaselineUnavailable("the train split is empty")
    label = max((POSITIVE, NEGATIVE), key=lambda name: counts[name])
    return lambda rows: [label] * len(rows)


def fit_keyword(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """Anomalous if any configured keyword occurs as a whole word in the lowercased prompt; learns nothing."""
    words = [w.lower() for w in cfg.keywords if w.strip()]
    if not words:
        return lambda rows: [NEGATIVE] * len(rows)
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b")
    return lambda rows: [POSITIVE if pattern.search(row["prompt"].lower()) else NEGATIVE for row in rows]


def event_counts(row: dict) -> dict[str, int]:
    """A session's drain3 event-count vector: how often each template id occurs in it."""
    if "template_ids" not in row:
        raise BaselineUnavailable(f"row {row.get('id')!r} has no template_ids (prepare the data again)")
    return dict(Counter(str(t) for t in row["template_ids"]))


def _fit_event_model(train: Sequence[dict], model) -> Predictor:
    """Fit `model` on event counts (vocabulary from train; ids unseen in train are ignored at prediction)."""
    from sklearn.feature_extraction import DictVectorizer

    labels = [row["label"] for row in train]
    classes = set(labels)
    if len(classes) < 2:
        raise BaselineUnavailable(f"the train split has one class only ({', '.join(sorted(classes)) or 'no rows'})")
    vectorizer = DictVectorizer()
    model.fit(vectorizer.fit_transform([event_counts(row) for row in train]), labels)
    return lambda rows: [str(v) for v in model.predict(vectorizer.transform([event_counts(r) for r in rows]))]


def fit_logistic_regression(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """Logistic regression on drain3 event counts, classes balanced."""
    from sklearn.linear_model import LogisticRegression

    return _fit_event_model(train, LogisticRegression(max_iter=1000, class_weight="balanced"))


def fit_decision_tree(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """A decision tree on drain3 event counts."""
    from sklearn.tree import DecisionTreeClassifier

    return _fit_event_model(train, DecisionTreeClassifier(random_state=0))


def fit_tfidf_logistic_regression(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """Logistic regression on TF-IDF word uni- and bigrams of the prompt text (the template task's baseline)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    labels = [row["label"] for row in train]
    if len(set(labels)) < 2:
        raise BaselineUnavailable(f"the train split has one class only ({', '.join(sorted(set(labels))) or 'no rows'})")
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"[A-Za-z][A-Za-z0-9_]+", min_df=1)
    model = LogisticRegression(max_iter=1000, class_weight="balanced")
    model.fit(vectorizer.fit_transform([row["prompt"] for row in train]), labels)
    return lambda rows: [str(v) for v in model.predict(vectorizer.transform([row["prompt"] for row in rows]))]


BASELINES: dict[str, Callable[[Sequence[dict], EvalConfig], Predictor]] = {
    "majority": fit_majority,
    "keyword": fit_keyword,
    "logistic_regression": fit_logistic_regression,
    "decision_tree": fit_decision_tree,
    "tfidf_logistic_regression": fit_tfidf_logistic_regression,
}


def run_baselines(train: Sequence[dict], rows: Sequence[dict], cfg: EvalConfig) -> list[BaselineResult]:
    """Fit each configured baseline on `train` and predict `rows`; one that cannot be fit is reported as skipped."""
    results = []
    for name in cfg.baselines:
        try:
            predictor = BASELINES[name](train, cfg)
            started = time.perf_counter()
            verdicts = predictor(rows)
            results.append(BaselineResult(name, verdicts, time.perf_counter() - started))
        except BaselineUnavailable as err:
            results.append(BaselineResult(name, None, skipped=str(err)))
    return results
