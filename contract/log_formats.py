"""The log formats a run's data may come in: one list, and the properties every role asks of a format."""

from __future__ import annotations

from typing import Literal, get_args

TEMPLATES_FORMAT = "templates"  # one template (or bare message) per row: each row is a session of its own
REGEX_FORMAT = "regex"  # the generic format: its line regex is in `data.regex`

DataFormat = Literal["bgl", "thunderbird", "spirit", "hdfs", "loglead_hdfs", "templates", "regex"]
LOG_FORMATS: tuple[str, ...] = get_args(DataFormat)  # every format, in the order the config documents them

BLOCK_FORMATS = ("hdfs", "loglead_hdfs")  # labelled per block (session), never per line
# Formats whose corpora carry the alert label as the first token. Live logs (what /detect receives) have no
# label: they start with the unix timestamp, and are parsed as if labelled "?" and then reported as unlabelled.
LABEL_FIRST_FORMATS = ("bgl", "thunderbird", "spirit")
