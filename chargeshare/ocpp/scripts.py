"""Command scripts: what an engine holding charger links runs for the command policy.

A script is a generator of steps. It yields `Send` (a typed command for the order's charger; the
engine sends it and sends back the typed result), `Effect` (a call on the services, such as
recording an answer: the engine runs it, off the event loop on the server and inline in the DES,
and sends back its value or throws its exception in) and `Issue` (further orders, each run on its
own). The script itself decides everything and does no I/O, so the same one runs on both engines.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeAlias

from chargeshare.ocpp import commands as cmd


@dataclass(frozen=True)
class Send:
    command: cmd.Command[Any]


@dataclass(frozen=True)
class Effect:
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Issue:
    orders: tuple[Order, ...]


Step: TypeAlias = Send | Effect | Issue
Script: TypeAlias = Generator[Step, Any, None]


@dataclass(frozen=True, eq=False)
class Order:
    """Run `script` for one charger: at once, or (`after_reply`) on its link here once the answer
    to the frame being handled has left, since a command may not overtake that answer."""

    charge_point_id: str
    script: Generator[Step, Any, object]
    after_reply: bool = False


def drive(
    script: Generator[Step, Any, Any],
    send: Callable[[cmd.Command[Any]], cmd.CommandResult[Any]],
    effect: Callable[[Effect], Any],
    issue: Callable[[Order], None],
) -> Any:
    """Run a script to its end with synchronous I/O (the DES engine, tests); returns its value."""
    reply: Any = None
    error: Exception | None = None
    while True:
        try:
            step = script.send(reply) if error is None else script.throw(error)
        except StopIteration as stop:
            return stop.value
        reply, error = None, None
        if isinstance(step, Send):
            reply = send(step.command)
        elif isinstance(step, Effect):
            try:
                reply = effect(step)
            except Exception as exc:
                error = exc
        else:
            for order in step.orders:
                issue(order)
