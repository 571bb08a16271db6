"""The virtual charger's file transfers over HTTP: downloading and installing a firmware image
(UpdateFirmware), and uploading its log (GetLog; 1.6 GetDiagnostics), each told to the CSMS as
it goes with the version's status notifications (`say`)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from simulators.charger_port import ChargerPort

log = logging.getLogger(__name__)
TRANSFER_TIMEOUT_S = 30.0
Say = Callable[[str], Awaitable[None]]
# A location that cannot be read as a URL fails the transfer as a refused one does (httpx's
# InvalidURL is no HTTPError).
TRANSFER_FAILURES = (httpx.HTTPError, httpx.InvalidURL, ValueError)


async def update_firmware(cp: ChargerPort, location: str, say: Say) -> None:
    """Downloading, then Downloaded and Installing and Installed (or DownloadFailed): the image's
    digest becomes the firmware version it reports. Its driver starts it at the retrieve date."""
    await say("Downloading")
    try:
        async with httpx.AsyncClient(timeout=TRANSFER_TIMEOUT_S) as client:
            answer = await client.get(location)
            answer.raise_for_status()
    except TRANSFER_FAILURES as exc:
        log.info("%s: firmware download from %s failed: %s", cp.cp_id, location, exc)
        await say("DownloadFailed")
        return
    await say("Downloaded")
    await say("Installing")
    cp.firmware_version = "sha256-" + hashlib.sha256(answer.content).hexdigest()[:16]
    await say("Installed")


def log_text(cp: ChargerPort) -> bytes:
    """What its log holds: who it is, and each connector's state."""
    lines = [f"{cp.clock.now().isoformat()} {cp.cp_id} firmware {cp.firmware_version}"]
    lines += [f"connector {c.no}: {c.state.value}" for c in cp.connectors.values()]
    return ("\n".join(lines) + "\n").encode()


async def upload_log(cp: ChargerPort, location: str, say: Say, *, failed: str) -> None:
    """Uploading, then Uploaded (or `failed`, the version's word for it)."""
    await say("Uploading")
    try:
        async with httpx.AsyncClient(timeout=TRANSFER_TIMEOUT_S) as client:
            answer = await client.put(location, content=log_text(cp))
            answer.raise_for_status()
    except TRANSFER_FAILURES as exc:
        log.info("%s: log upload to %s failed: %s", cp.cp_id, location, exc)
        await say(failed)
        return
    await say("Uploaded")
