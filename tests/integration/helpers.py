"""Checks run identically against each backend."""

from __future__ import annotations

import random
import threading
from collections import Counter

from chargeshare.bootstrap import App
from chargeshare.domain.charger import ChargerSpec, ConnectorSpec, ConnectorType
from chargeshare.domain.errors import BookingConflict
from chargeshare.domain.geo import BBox, Point
from chargeshare.domain.tariff import Tariff
from chargeshare.services.booking import BookRequest


def race_for_one_connector(app: App, attempts: int, threads: int = 8) -> Counter[str]:
    """`attempts` drivers book overlapping windows on one connector from `threads` threads at once."""
    host = app.marketplace.add_host("h")
    charger = app.marketplace.add_charger(
        ChargerSpec(
            "RACE", host, Point(51.5, -0.1), Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),)
        )
    )
    drivers = [app.marketplace.add_driver(f"d{i}", f"T{i}").driver_id for i in range(attempts)]
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(threads)
    queue = list(drivers)

    def worker() -> None:
        barrier.wait()
        while True:
            with lock:
                if not queue:
                    return
                d = queue.pop()
            try:
                app.bookings.book(BookRequest(d, charger.charger_id, 1, 60 + d % 30, 5_000))
                result = "won"
            except BookingConflict:
                result = "conflict"
            except Exception as exc:  # anything else is a bug the test must show
                result = f"error:{type(exc).__name__}:{exc}"
            with lock:
                outcomes[result] += 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(timeout=120)
    return outcomes


def random_fleet(app: App, rng: random.Random, n: int) -> list[tuple[int, Point]]:
    host = app.marketplace.add_host("h")
    out = []
    for i in range(n):
        # UK-ish, deliberately straddling the Greenwich meridian
        p = Point(round(rng.uniform(50.0, 55.0), 6), round(rng.uniform(-1.0, 1.0), 6))
        v = app.marketplace.add_charger(
            ChargerSpec(f"F{i}", host, p, Tariff(30), (ConnectorSpec(1, ConnectorType.TYPE2, 7400),))
        )
        out.append((v.charger_id, p))
    return out


def bbox_matches_oracle(app: App, fleet: list[tuple[int, Point]], box: BBox) -> None:
    got = [c.charger_id for c in app.marketplace.search(box, limit=500)]
    want = sorted(cid for cid, p in fleet if box.contains(p))[:500]
    assert got == want, f"bbox {box}: got {got}, want {want}"
