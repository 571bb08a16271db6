"""The person (or the simulator hook) who does what a case cannot do over OCPP: plug a cable in,
present a card, unplug."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Action(StrEnum):
    PLUG_AND_PRESENT = "plug_and_present"  # plug the cable in, then present the card
    PLUG_CABLE = "plug_cable"  # plug the cable in, no card (a remote start follows)
    PRESENT_CARD = "present_card"  # present the card with no car plugged in yet
    UNPLUG = "unplug"  # stop charging at the car and unplug the cable


@dataclass(frozen=True)
class Step:
    action: Action
    connector: int
    id_tag: str | None = None

    def instruction(self) -> str:
        if self.action is Action.PLUG_AND_PRESENT:
            return f"Plug a car into connector {self.connector}, then present the card {self.id_tag!r}."
        if self.action is Action.PLUG_CABLE:
            return f"Plug a car into connector {self.connector} (do not present a card)."
        if self.action is Action.PRESENT_CARD:
            return f"Present the card {self.id_tag!r} at the charger, with no car plugged in yet."
        return f"Unplug the car from connector {self.connector}."


class Pausable(Protocol):
    def stop(self) -> None: ...
    def start(self) -> None: ...


class Operator(Protocol):
    async def perform(self, step: Step) -> bool:
        """Carry the step out (or have it carried out); False when nobody did it (the case is NOT
        RUN). An operator that knows the charger cannot do it raises NotApplicable instead."""
        ...


class PromptOperator:
    """Asks the person at the charger, on the terminal, and waits for them to confirm."""

    def __init__(self, ask: Callable[[str], bool] | None = None) -> None:
        self._ask = ask or _confirm
        self.around: Pausable | None = None  # a live display to stop while the question is asked

    async def perform(self, step: Step) -> bool:
        question = f"[bold yellow]operator:[/] {step.instruction()} Done?"
        if self.around is not None:
            self.around.stop()
        try:
            return await asyncio.to_thread(self._ask, question)
        finally:
            if self.around is not None:
                self.around.start()


def _confirm(question: str) -> bool:
    from rich.prompt import Confirm

    return Confirm.ask(question, default=True)


class NoOperator:
    """Nobody at the charger: every physical step is refused, so those cases are NOT RUN."""

    async def perform(self, step: Step) -> bool:
        return False
