"""Firmware updates and log uploads end to end, over real loopback sockets: the typed command goes
out over the charger's WebSocket, the virtual charger downloads from (or uploads to) the backend's
own HTTP location, and its status notifications reach the operator's view of it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp import file_commands as files
from chargeshare.services.clock import SystemClock
from simulators.charger import VirtualCharger
from tests.conftest import add_charger
from tests.e2e.conftest import Central
from tests.waiting import eventually

pytestmark = pytest.mark.e2e
CP = "VC-FILES"


@pytest.fixture(params=["1.6", "2.0.1", "2.1"])
async def charger(central: Central, request: pytest.FixtureRequest) -> AsyncIterator[VirtualCharger]:
    add_charger(central.app, CP, online=False)  # registered: what it reports is kept
    charger = VirtualCharger(CP, central.ws, SystemClock(), [7_400], protocol=request.param)
    await charger.start()
    try:
        yield charger
    finally:
        await charger.stop()


def statuses(c: Central, action: str) -> list[str]:
    return [r.body["status"] for r in c.app.reports.reports(CP, [action])]


def url(c: Central, token: str) -> str:
    return f"http://127.0.0.1:{c.port}/files/{token}"


async def test_a_published_image_is_downloaded_and_installed(
    central: Central, charger: VirtualCharger
) -> None:
    image = b"firmware 2.0 " * 1000
    published = central.app.files.publish_firmware("fw-2.0.bin", image)
    update = files.UpdateFirmware(url(central, published.token), datetime.now(UTC), request_id=3)
    assert await central.registry.send(CP, update) == cmd.Done(cmd.Status.ACCEPTED, None)
    steps = ["Downloading", "Downloaded", "Installing", "Installed"]
    await eventually(lambda: statuses(central, "FirmwareStatusNotification") == steps, "the update")
    assert charger.firmware_version == "sha256-" + hashlib.sha256(image).hexdigest()[:16]
    latest = central.app.reports.reported_state(CP).statuses
    assert any(s.status == "Installed" for s in latest)
    # An image that is not there: the charger says the download failed.
    missing = files.UpdateFirmware(url(central, "N" * 43), datetime.now(UTC), request_id=4)
    assert await central.registry.send(CP, missing) == cmd.Done(cmd.Status.ACCEPTED, None)
    await eventually(
        lambda: statuses(central, "FirmwareStatusNotification")[-1] == "DownloadFailed", "the failure"
    )


async def test_a_log_is_uploaded_to_its_slot_and_read_back(central: Central, charger: VirtualCharger) -> None:
    slot = central.app.files.log_slot(CP)
    asked = await central.registry.send(CP, files.GetLog(url(central, slot.token), request_id=5))
    assert asked == cmd.Done(cmd.Status.ACCEPTED, f"{CP}.log")
    action = "DiagnosticsStatusNotification" if charger.protocol == "1.6" else "LogStatusNotification"
    await eventually(lambda: statuses(central, action) == ["Uploading", "Uploaded"], "the upload")
    f, content = central.app.files.uploaded(slot.token)
    assert f.size == len(content) and f"{CP} firmware" in content.decode()
    # A second upload to the same location is refused; the charger says so.
    again = await central.registry.send(CP, files.GetLog(url(central, slot.token), request_id=6))
    assert isinstance(again, cmd.Done)
    failed = "UploadFailed" if charger.protocol == "1.6" else "UploadFailure"
    await eventually(lambda: statuses(central, action)[-1] == failed, "the refused upload")
    async with httpx.AsyncClient() as http:
        assert (await http.put(url(central, slot.token), content=b"x")).status_code == 409


async def test_a_location_that_is_no_url_fails_the_transfer(
    central: Central, charger: VirtualCharger
) -> None:
    """Found by an adversarial pass: the charger said Downloading and then nothing more."""
    for i, bad in enumerate(("http://[::1/fw.bin", "http://host:notaport/fw"), 1):
        update = files.UpdateFirmware(bad, datetime.now(UTC))
        assert await central.registry.send(CP, update) == cmd.Done(cmd.Status.ACCEPTED, None)
        expected = ["Downloading", "DownloadFailed"] * i
        await eventually(lambda: statuses(central, "FirmwareStatusNotification") == expected, bad)  # noqa: B023
    action = "DiagnosticsStatusNotification" if charger.protocol == "1.6" else "LogStatusNotification"
    failed = "UploadFailed" if charger.protocol == "1.6" else "UploadFailure"
    assert isinstance(await central.registry.send(CP, files.GetLog("http://[::1/log")), cmd.Done)
    await eventually(lambda: statuses(central, action) == ["Uploading", failed], "the failed upload")


async def test_what_a_version_cannot_say_is_not_sent(central: Central, charger: VirtualCharger) -> None:
    security = files.GetLog("http://127.0.0.1/x", log_type=files.LogType.SECURITY)
    signed = files.UpdateFirmware("http://127.0.0.1/x", datetime.now(UTC), signature="c2ln")
    commands: tuple[cmd.Command[Any], ...] = (security, signed)
    for command in commands:
        result = await central.registry.send(CP, command)
        if charger.protocol == "1.6":
            assert isinstance(result, cmd.NotApplicable)
        else:  # said, and refused by a charger that keeps no security log and checks no signature
            assert result == cmd.Rejected(cmd.Status.REJECTED)
