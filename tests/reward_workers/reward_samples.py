"""Shared test data for the reward tests: a BGL-like prompt, its teacher rationale, completion builders."""

from __future__ import annotations

from reward_workers.registry import RewardInput

PROMPT = """Classify this log session as normal or anomalous. Cite evidence as L<n> "<verbatim text>".
L1 KERNEL INFO: instruction cache parity error corrected
L2 KERNEL INFO: generating core.2275
L3 KERNEL FATAL: data TLB error interrupt
L4-L9 (x6) KERNEL INFO: CE sym 2, at 0x0b85eee0, mask 0x05
L10 APP FATAL: ciod: failed to read message prefix on control stream (CioStream socket to 172.16.96.116:33569
L11 KERNEL INFO: total of 2 ddr error(s) detected and corrected
L12 MMCS ERROR: idoproxydb hit ASSERT condition: ASSERT expression=0
"""
# The lines whose events make the session anomalous (what the data pipeline records as `anomaly_lines`).
ANOMALY_LINES = (3, 10, 12)

REFERENCE = (
    'L3 "data TLB error interrupt" is a fatal kernel interrupt, L10 "ciod: failed to read message prefix" '
    'shows the job losing its control stream and L12 "hit ASSERT condition" is a failed assertion, so the session '
    "is anomalous."
)

CONCISE = (
    'L3 "data TLB error interrupt" is a fatal kernel error, L10 "failed to read message prefix" '
    'means the job lost its control stream, L12 "hit ASSERT condition" a failed check.'
)


def completion(rationale: str, verdict: str = "anomalous") -> str:
    """A well-formed think-first completion."""
    return f"<think>{rationale}</think><answer>{verdict}</answer>"


def sample(
    text: str,
    label: str = "anomalous",
    prompt: str = PROMPT,
    reference: str = REFERENCE,
    anomaly_lines: tuple[int, ...] | None = None,
) -> RewardInput:
    """A RewardInput over the shared prompt; an anomalous label defaults to the prompt's anomaly lines."""
    if anomaly_lines is None:
        anomaly_lines = ANOMALY_LINES if label == "anomalous" else ()
    return RewardInput(prompt=prompt, completion=text, label=label, reference=reference, anomaly_lines=anomaly_lines)
