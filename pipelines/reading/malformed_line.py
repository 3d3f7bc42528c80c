"""The error a log line raises when it does not fit its format (its reason goes to the dead-letter file)."""

from __future__ import annotations


class MalformedLine(ValueError):
    """A line that does not fit its format; `reason` says which rule it broke (goes to the dead-letter file).

    `kind` is the rule without the offending value (`bgl: bad date`): the run summary counts dead letters by it.
    """

    def __init__(self, reason: str, kind: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind or reason
