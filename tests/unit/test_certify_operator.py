"""The operator prompt: the question names the step, the live display steps aside while it is asked."""

from __future__ import annotations

from chargeshare.certify.operator import Action, PromptOperator, Step


class Display:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def stop(self) -> None:
        self.calls.append("stop")

    def start(self) -> None:
        self.calls.append("start")


async def test_the_prompt_asks_for_the_step_and_reports_the_answer() -> None:
    asked: list[str] = []
    answers = iter([True, False])

    def ask(question: str) -> bool:
        asked.append(question)
        return next(answers)

    operator = PromptOperator(ask)
    display = Display()
    operator.around = display
    assert await operator.perform(Step(Action.PLUG_AND_PRESENT, 2, "CARD-7")) is True
    assert await operator.perform(Step(Action.UNPLUG, 2)) is False
    assert "connector 2" in asked[0] and "'CARD-7'" in asked[0] and "Unplug" in asked[1]
    assert display.calls == ["stop", "start", "stop", "start"]
