"""metarunlog/fmt.py: values as a person reads them in tables, reports and progress lines."""

from __future__ import annotations

import pytest

from metarunlog.fmt import fmt_duration, format_value


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, ""), (0, "0.0s"), (12.46, "12.5s"), (59.94, "59.9s"), (65, "1:05"), (3599.6, "1:00:00"), (7265, "2:01:05")],
)
def test_a_duration_reads_as_seconds_under_a_minute_and_as_clock_time_above(seconds, shown) -> None:
    assert fmt_duration(seconds) == shown


def test_a_duration_of_more_than_a_day_keeps_counting_hours() -> None:
    assert fmt_duration(26 * 3600 + 61) == "26:01:01"


def test_a_float_is_shown_to_six_significant_digits() -> None:
    assert format_value(0.123456789) == "0.123457"
    assert format_value(1234567.0) == "1.23457e+06"
    assert format_value(float("nan")) == "nan"


def test_the_duration_column_is_shown_as_clock_time_and_other_numbers_are_not() -> None:
    assert format_value(65.0, "duration") == "1:05"
    assert format_value(65.0, "loss") == "65"
    assert format_value(65, "epochs") == "65"


def test_none_is_an_empty_cell_and_containers_are_their_json() -> None:
    assert format_value(None) == ""
    assert format_value(None, "duration") == ""
    assert format_value([1, "a"]) == '[1, "a"]'
    assert format_value({"k": (1, 2)}) == '{"k": [1, 2]}'


def test_strings_and_booleans_are_shown_as_they_are() -> None:
    assert format_value("adam") == "adam"
    assert format_value(True) == "True"


def test_a_long_log_line_is_cut_with_a_marker_saying_how_much_and_a_short_one_is_left_alone() -> None:
    from metarunlog.fmt import LOG_LINE_MAX, cut_line

    assert cut_line("x" * LOG_LINE_MAX) == "x" * LOG_LINE_MAX
    assert cut_line("x" * 70_000) == "x" * LOG_LINE_MAX + f"... [line cut: {70_000 - LOG_LINE_MAX:,} more characters]"
    # characters, not bytes: no half of a UTF-8 sequence; an e and its combining accent stay together
    assert cut_line("é" * 1000, 10) == "é" * 10 + "... [line cut: 990 more characters]"
    accented = "e\u0301" * 10
    assert cut_line(accented, 5) == "e\u0301e\u0301" + "... [line cut: 16 more characters]"
    # a colour sequence the width falls inside goes whole: half of one would eat the marker
    coloured = "ab\x1b[31mred\x1b[0m" + "z" * 50
    assert cut_line(coloured, 5) == "ab... [line cut: 62 more characters]"
    assert cut_line(coloured, 7).startswith("ab\x1b[31m...")
