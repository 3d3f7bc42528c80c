"""One list of log formats: every parser, fast path and format property names a format of that list."""

from __future__ import annotations

from contract.log_formats import BLOCK_FORMATS, LABEL_FIRST_FORMATS, LOG_FORMATS, REGEX_FORMAT, TEMPLATES_FORMAT


def test_the_list_holds_the_named_formats():
    assert LOG_FORMATS == ("bgl", "thunderbird", "spirit", "hdfs", "loglead_hdfs", "templates", "regex")
    assert {TEMPLATES_FORMAT, REGEX_FORMAT, *BLOCK_FORMATS, *LABEL_FIRST_FORMATS} <= set(LOG_FORMATS)


def test_every_format_has_a_parser_and_every_fast_path_a_format():
    from pipelines.reading.columnar_parse import COLUMNAR_FORMATS
    from pipelines.reading.log_formats import FORMATS

    assert {*FORMATS, REGEX_FORMAT} == set(LOG_FORMATS)  # regex's parser is built from data.regex
    assert set(COLUMNAR_FORMATS) <= set(LOG_FORMATS)


def test_the_config_accepts_exactly_the_list():
    from typing import get_args

    from pipelines.config import DataConfig

    assert get_args(DataConfig.model_fields["format"].annotation) == LOG_FORMATS
