"""`report.md` + `prompt_tokens.png` beside a prepared dataset: what the build kept, dropped and how long prompts are.

Read from the build's own outputs (summary.json's counts, the split files streamed row by row), so the report
describes exactly what training will read.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.prompts.render import TokenCounter, estimate_tokens
from pipelines.prompts.store import iter_examples

REPORT_FILE = "report.md"
HISTOGRAM_FILE = "prompt_tokens.png"


def prompt_lengths(path: str | Path, count_tokens: TokenCounter = estimate_tokens) -> list[int]:
    """Token counts of every row's prompt in a split, streamed (the prompt column only)."""
    return [count_tokens(row["prompt"]) for row in iter_examples(path, ["prompt"])]


def _quantile(sorted_values: list[int], q: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] if sorted_values else 0


def split_rows(summary: dict, lengths: dict[str, list[int]]) -> list[str]:
    """The per-split table: sessions, anomaly rate, prompt token percentiles."""
    rows = [
        "| split | sessions | anomalous | anomaly rate | prompt tokens p50 | p90 | max |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, counts in summary["splits"].items():
        values = sorted(lengths.get(name, []))
        rate = counts["anomalous"] / counts["sessions"] if counts["sessions"] else 0.0
        rows.append(
            f"| {name} | {counts['sessions']} | {counts['anomalous']} | {rate:.3f} "
            f"| {_quantile(values, 0.5)} | {_quantile(values, 0.9)} | {values[-1] if values else 0} |"
        )
    return rows


def novelty_rows(summary: dict) -> list[str]:
    """The held-out splits' lines and sessions showing templates the training split never shows."""
    novelty = summary.get("unseen_in_training") or {}
    if not novelty:
        return []
    rows = [
        "## Templates unseen in training",
        "",
        "| split | lines | of templates unseen in training | sessions | showing one |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, c in novelty.items():
        rows.append(f"| {name} | {c['lines']} | {c['unseen_lines']} | {c['sessions']} | {c['unseen_sessions']} |")
    return [*rows, ""]


def render_report(summary: dict, lengths: dict[str, list[int]]) -> str:
    """The Markdown report of one build."""
    lines = [
        "# Prepared dataset",
        "",
        f"- format: {summary['format']}, sessions: {summary['session']}, split: {summary['split']}, "
        f"teacher: {summary['teacher']}",
        f"- lines read: {summary['lines_read']}, kept: {summary['good_lines']}, dead letters: {summary['malformed']}",
        f"- templates: {summary['templates']}, lines no template matched: {summary['unmatched_lines']}, "
        f"unlabelled sessions: {summary['unlabelled_sessions']}",
        f"- prompt budget: {summary['max_prompt_tokens']} tokens (counted as ceil(UTF-8 bytes / 3))",
        "",
        "## Splits",
        "",
        *split_rows(summary, lengths),
        "",
        *novelty_rows(summary),
        "## Dead letters by kind",
        "",
    ]
    dead = summary.get("dead_letters") or {}
    if dead:
        lines += ["| kind | lines |", "|---|---:|", *(f"| {kind} | {n} |" for kind, n in sorted(dead.items()))]
    else:
        lines.append("none")
    lines += ["", f"![prompt token lengths]({HISTOGRAM_FILE})", ""]
    return "\n".join(lines)


def plot_lengths(lengths: dict[str, list[int]], budget: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 3.5))
    for name, values in lengths.items():
        if values:
            axis.hist(values, bins=40, alpha=0.6, label=f"{name} ({len(values)})")
    axis.axvline(budget, color="black", linestyle="--", linewidth=1, label=f"budget {budget}")
    axis.set_xlabel("prompt tokens")
    axis.set_ylabel("sessions")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_data_report(summary: dict, out: str | Path) -> Path:
    """Write report.md and the prompt-length histogram into `out`; returns the report's path."""
    out = Path(out)
    paths = summary["paths"]
    lengths = {name: prompt_lengths(paths[name]) for name in summary["splits"] if name in paths}
    plot_lengths(lengths, summary["max_prompt_tokens"], out / HISTOGRAM_FILE)
    report = out / REPORT_FILE
    report.write_text(render_report(summary, lengths))
    return report
