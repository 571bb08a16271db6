"""The options several commands share, with one meaning per name wherever they appear.

`--json PATH` (`-`: stdout), `--junit PATH`, `--html PATH`: reports. `--plot PATH`: a PNG or an SVG,
by extension. Durations (`--duration`, timeouts, phases): `90m`, `6h`, `45s`, `2h30m`, or a bare
number in the option's own unit. Only typer, click, rich and the standard library are imported here,
so that `--help` stays fast.
"""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

STDOUT = "-"
PLOT_FORMATS = ("png", "svg")

UNIT_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
UNIT_WORDS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_NUMBER = r"\d+(?:\.\d+)?"
_BARE = re.compile(rf"{_NUMBER}")
# Units largest first, each at most once: "2h30m" reads one way only, "30m2h" is refused.
_PARTS = re.compile("".join(rf"(?:(?P<{u}>{_NUMBER}){u})?" for u in UNIT_SECONDS))


class DurationError(ValueError):
    pass


def parse_duration(text: str, unit: str) -> float:
    """Seconds in `text`: `90m`, `6h`, `45s`, `1d`, `2h30m`, `1.5h`, or a bare number of `unit`s."""
    if unit not in UNIT_SECONDS:
        raise ValueError(f"unknown unit {unit!r}")
    cleaned = text.strip().lower()
    if _BARE.fullmatch(cleaned):
        return float(cleaned) * UNIT_SECONDS[unit]
    found = _PARTS.fullmatch(cleaned)
    if not cleaned or found is None:
        raise DurationError(
            f"{text!r} is not a duration: give e.g. 90m, 6h, 45s or 2h30m "
            f"(a bare number is {UNIT_WORDS[unit]})"
        )
    return sum(float(found[u] or 0) * seconds for u, seconds in UNIT_SECONDS.items())


def format_duration(seconds: float) -> str:
    """The shortest way `parse_duration` reads back: 5400 -> "1h30m"."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    left, parts = int(seconds), []
    for unit, size in UNIT_SECONDS.items():
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"


def duration_parser(unit: str, *, min_s: float, max_s: float | None) -> Callable[[Any], float]:
    """Typer's `parser` for a duration option: the value is seconds, whatever the user wrote.

    Values that are already numbers are defaults, in seconds: only the command line gives strings.
    """

    def parse(value: Any) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            seconds = parse_duration(str(value), unit)
        except DurationError as exc:
            raise typer.BadParameter(str(exc)) from None
        if seconds < min_s or (max_s is not None and seconds > max_s):
            top = "" if max_s is None else f" and {format_duration(max_s)}"
            raise typer.BadParameter(f"{value} is not between {format_duration(min_s)}{top}")
        return seconds

    return parse


def duration_option(
    help: str, unit: str, *, default_s: float, min_s: float = 0.0, max_s: float | None = None
) -> Any:  # Any: typer.Option's own return type is private
    """A duration option whose help names the bare number's unit and shows the default readably."""
    return typer.Option(
        parser=duration_parser(unit, min_s=min_s, max_s=max_s),
        metavar="DURATION",
        show_default=format_duration(default_s),
        help=f"{help} E.g. 90m, 6h, 2h30m; a bare number is {UNIT_WORDS[unit]}.",
    )


def to_stdout(path: Path | None) -> bool:
    return path is not None and str(path) == STDOUT


def check_output(value: Path | None) -> Path | None:
    """An output file's directory must exist before any work is done (`-` is stdout)."""
    if value is not None and not to_stdout(value) and not value.parent.is_dir():
        raise typer.BadParameter(f"directory {value.parent} does not exist")
    return value


def check_plot(value: Path | None) -> Path | None:
    """A plot is a PNG or an SVG, chosen by the extension; anything else is refused at once."""
    if value is None:
        return None
    if value.suffix.lower().lstrip(".") not in PLOT_FORMATS:
        raise typer.BadParameter(f"{value}: a plot is a .png or an .svg file")
    return check_output(value)


def output_option(help: str, *names: str) -> Any:  # Any: typer.Option's own return type is private
    return typer.Option(*names, help=help, callback=check_output, metavar="PATH")


def json_option(what: str) -> Any:
    return output_option(f"Write {what} as JSON here (-: to stdout, everything else to stderr).", "--json")


def junit_option(what: str) -> Any:
    return output_option(f"Write {what} as JUnit XML here.", "--junit")


def html_option(what: str) -> Any:
    return output_option(f"Write {what} as one self-contained HTML page here.", "--html")


def plot_option(what: str) -> Any:
    return typer.Option(
        "--plot",
        help=f"Plot {what} here: a .png or an .svg, by the extension.",
        callback=check_plot,
        metavar="PATH",
    )


def write_output(path: Path, text: str) -> None:
    """Write `text` to `path`, or to stdout for `-`."""
    if to_stdout(path):
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
    else:
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")


@contextmanager
def human_output(console: Console, *outputs: Path | None) -> Iterator[Console]:
    """While a report goes to stdout, what is written for people goes to stderr, so the JSON parses."""
    if not any(to_stdout(p) for p in outputs):
        yield console
        return
    before = console.stderr
    console.stderr = True
    try:
        yield console
    finally:
        console.stderr = before


def json_list_option() -> Any:
    """`--json -` on list and status commands: the rows as JSON instead of a table."""
    return output_option("Write the rows as JSON here instead of a table (-: to stdout).", "--json")


def write_rows(path: Path, rows: Any) -> None:
    import json

    write_output(path, json.dumps(rows, indent=2, sort_keys=True, default=_plain))


def _plain(value: Any) -> Any:
    """What JSON has no type for: instants as ISO 8601, read-only mappings as objects, else text."""
    from collections.abc import Mapping
    from datetime import datetime

    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    return str(value)


# -q/--quiet and -v/--verbose: added to every command by the app (`verbosity_options`), read here.
QUIET_HELP = "Print only errors and the result: the verdict, or the rows or values asked for."
VERBOSE_HELP = "Print more detail, and log at debug level."
_verbosity = {"quiet": False, "verbose": False}


def quiet() -> bool:
    return _verbosity["quiet"]


def verbose() -> bool:
    return _verbosity["verbose"]


def _set_verbosity(name: str, other: str) -> Callable[[typer.Context, bool], None]:
    # Both callbacks run on every invocation (with False when not given): the state never leaks
    # from one command to the next, as it would between CliRunner calls.
    def set_it(ctx: typer.Context, value: bool) -> None:
        ctx.meta[f"chargeshare.{name}"] = value
        _verbosity[name] = value
        if value and ctx.meta.get(f"chargeshare.{other}"):
            raise typer.BadParameter("-q/--quiet and -v/--verbose contradict each other")
        if value and name == "verbose":
            import logging

            configure_logging(logging.DEBUG)  # for commands that configure no logging of their own

    return set_it


def _verbosity_placeholder(
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help=QUIET_HELP, callback=_set_verbosity("quiet", "verbose"), expose_value=False
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help=VERBOSE_HELP,
            callback=_set_verbosity("verbose", "quiet"),
            expose_value=False,
        ),
    ] = False,
) -> None:
    """Only here to have Typer make the two options."""


def verbosity_options() -> list[Any]:  # Any: click's Parameter lives in a private module
    """Fresh -q/-v options for one command: copies of the pair Typer made once from the placeholder
    above (making them costs a Typer build, and every command of the app takes them)."""
    return [copy.copy(option) for option in _verbosity_pair()]


@cache
def _verbosity_pair() -> tuple[Any, ...]:
    holder = typer.Typer(add_completion=False)
    holder.command()(_verbosity_placeholder)
    return tuple(typer.main.get_command(holder).params)


def chatter(console: Console) -> Console:
    """Where what is not the result goes (progress, banners, "written to" lines): muted by -q."""
    return Console(quiet=True) if quiet() else console


def log_level(default: int) -> int:
    """The root logger's level for a command: debug with -v, at least errors-only with -q."""
    import logging

    if verbose():
        return logging.DEBUG
    return max(default, logging.ERROR) if quiet() else default


def configure_logging(default: int) -> None:
    import logging

    logging.basicConfig(level=log_level(default))
    logging.getLogger().setLevel(log_level(default))  # basicConfig does nothing once configured
