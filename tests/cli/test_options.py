"""The options commands share: one duration parser, report paths, plot formats."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st

from chargeshare.cli.options import (
    DurationError,
    check_output,
    check_plot,
    duration_parser,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "unit", "seconds"),
    [
        ("90m", "m", 5400),
        ("6h", "m", 21600),
        ("45s", "h", 45),
        ("2h30m", "s", 9000),
        ("1d2h3m4s", "s", 93784),
        ("1.5h", "m", 5400),
        ("120", "m", 7200),  # a bare number is the option's own unit
        ("24", "h", 86400),
        ("0.5", "s", 0.5),
        (" 2H30M ", "s", 9000),
    ],
)
def test_durations_people_write(text: str, unit: str, seconds: float) -> None:
    assert parse_duration(text, unit) == seconds


@pytest.mark.parametrize(
    "text", ["", "m", "h2", "-5m", "30m2h", "1h1h", "2 h", "5x", "1e3", "nan", "inf", "1h 30m", "1,5h"]
)
def test_nonsense_is_refused_with_a_hint(text: str) -> None:
    with pytest.raises(DurationError, match=r"is not a duration: give e\.g\. 90m, 6h, 45s or 2h30m"):
        parse_duration(text, "m")


def test_the_hint_names_the_bare_unit() -> None:
    with pytest.raises(DurationError, match=r"a bare number is hours"):
        parse_duration("soon", "h")


@given(st.integers(min_value=0, max_value=30 * 86_400), st.sampled_from("smhd"))
def test_formatted_durations_read_back(seconds: int, unit: str) -> None:
    assert parse_duration(format_duration(seconds), unit) == seconds


@given(
    st.integers(0, 9), st.integers(0, 99), st.integers(0, 999), st.integers(0, 9999), st.sampled_from("smhd")
)
def test_parts_add_up_whatever_the_bare_unit(d: int, h: int, m: int, s: int, unit: str) -> None:
    text = f"{d}d{h}h{m}m{s}s"
    assert parse_duration(text, unit) == d * 86_400 + h * 3_600 + m * 60 + s


@given(st.text(alphabet="0123456789.dhms -+xe", max_size=8))
def test_any_text_parses_to_a_non_negative_number_or_is_refused(text: str) -> None:
    try:
        seconds = parse_duration(text, "m")
    except DurationError:
        return
    assert seconds >= 0


def test_the_option_parser_checks_the_range_and_keeps_defaults_as_seconds() -> None:
    parse = duration_parser("m", min_s=60, max_s=7 * 86_400)
    assert parse("2h") == 7200 and parse("30") == 1800
    assert parse(7200.0) == 7200  # a default, already seconds
    with pytest.raises(typer.BadParameter, match="8d is not between 1m and 7d"):
        parse("8d")
    with pytest.raises(typer.BadParameter, match="not a duration"):
        parse("later")


def test_outputs_need_their_directory_and_plots_a_known_extension(tmp_path: Path) -> None:
    assert check_output(Path("-")) == Path("-")
    assert check_output(tmp_path / "r.json") == tmp_path / "r.json"
    with pytest.raises(typer.BadParameter, match="does not exist"):
        check_output(tmp_path / "no" / "r.json")
    assert check_plot(tmp_path / "p.SVG") == tmp_path / "p.SVG"
    with pytest.raises(typer.BadParameter, match=r"a plot is a \.png or an \.svg file"):
        check_plot(tmp_path / "p.html")
