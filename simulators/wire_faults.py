"""Faults on one charger's wire, switchable at any time: drop a share of the frames it sends, answer
the CSMS late, refuse its commands, or send frames that break OCPP."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

ALL_COMMANDS = "*"


@dataclass
class WireFaults:
    seed: str  # of the RNG drawing which frames drop, made at the first draw (most chargers never draw)
    drop_rate: float = 0.0  # share of outgoing frames that never leave (0..1)
    delay_s: float = 0.0  # simulated seconds before a CSMS command is handled and answered
    reject: frozenset[str] = frozenset()  # CSMS actions answered with a refusal; ALL_COMMANDS for all
    dropped: int = 0
    delayed: int = 0
    rejected: int = 0
    malformed_sent: int = 0
    malformed_answers: list[str] = field(default_factory=list)  # the CALLERROR codes they drew

    _rng: random.Random | None = field(default=None, repr=False)

    @property
    def rng(self) -> random.Random:
        if self._rng is None:
            self._rng = random.Random(self.seed)
        return self._rng

    def drops(self) -> bool:
        return self.drop_rate > 0 and self.rng.random() < self.drop_rate

    def rejects(self, action: str) -> bool:
        return ALL_COMMANDS in self.reject or action in self.reject

    def clear(self) -> None:
        self.drop_rate, self.delay_s, self.reject = 0.0, 0.0, frozenset()


def malformed_frames(uid_prefix: str, n: int, bad_meter_values: dict[str, object]) -> list[tuple[str, str]]:
    """`n` frames (unique id, text) that break OCPP in different ways, cycling through: not JSON,
    a CALL without its payload, a real action with a payload its schema refuses, an unknown action."""
    out = []
    for i in range(n):
        uid = f"{uid_prefix}{i}"
        kind = i % 4
        if kind == 0:
            text = f'[2, "{uid}", "Heartbeat", {{'  # truncated: not JSON
        elif kind == 1:
            text = json.dumps([2, uid, "Heartbeat"])
        elif kind == 2:
            text = json.dumps([2, uid, "MeterValues", bad_meter_values])
        else:
            text = json.dumps([2, uid, "Teleport", {}])
        out.append((uid, text))
    return out
