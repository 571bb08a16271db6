"""Typer's CliRunner, with the click command tree built once per Typer app instead of per invoke.

Typer's own runner rebuilds the whole tree (every command's signature read again) on each call,
which cost more than most commands under test. Click's usual pattern is one command tree invoked
many times, and `chargeshare` builds its tree once per process too, so reusing it tests the same
thing. An app changed after its first invoke would not be seen: tests do not change the app.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any
from unittest import mock

import typer
import typer.main
import typer.testing
from typer.testing import Result

__all__ = ["CliRunner", "Result"]


@cache
def command_of(app: typer.Typer) -> Any:  # Any: click's Command lives in a private module
    return typer.main.get_command(app)


class CliRunner(typer.testing.CliRunner):
    def invoke(  # type: ignore[override]  # same parameters; the rest pass through unchanged
        self, app: typer.Typer, args: str | Sequence[str] | None = None, **kwargs: Any
    ) -> Result:
        # typer.testing builds the tree through this module-level name; a rename fails here, loudly.
        with mock.patch.object(typer.testing, "_get_command", command_of):
            return super().invoke(app, args, **kwargs)
