"""Certificate management over real loopback WebSockets: InstallCertificate, GetInstalledCertificateIds
and DeleteCertificate from the typed registry, against independent charge points on the `ocpp`
library (each version's own schema and names) and against the project's virtual charger, which
keeps the roots it is given and names them by the hash data the backend computes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from chargeshare.adapters.charger_ca import CA_CERT, CertificateAuthority
from chargeshare.ocpp import commands as cmd
from chargeshare.ocpp.certificate_ids import certificate_hash
from chargeshare.ocpp.command_names import parse_command, result_json
from chargeshare.services.clock import SystemClock
from simulators.charger import VirtualCharger
from tests.e2e.conftest import Central
from tests.e2e.ocpp_clients import Script
from tests.e2e.test_ocpp_commands import boot, charge_point, version  # noqa: F401

pytestmark = pytest.mark.e2e


@pytest.fixture
def ca_pem(tmp_path: Path) -> str:
    ca = CertificateAuthority.init(tmp_path / "ca", "Test Operator")
    return (ca.directory / CA_CERT).read_text()


@pytest.fixture
async def virtual(central: Central, request: pytest.FixtureRequest) -> AsyncIterator[VirtualCharger]:
    charger = VirtualCharger("VC-CERT", central.ws, SystemClock(), [7_400], protocol=request.param)
    await charger.start()
    try:
        yield charger
    finally:
        await charger.stop()


def _snake(h: cmd.CertificateHash) -> dict[str, str]:
    return {
        "hash_algorithm": h.hash_algorithm,
        "issuer_name_hash": h.issuer_name_hash,
        "issuer_key_hash": h.issuer_key_hash,
        "serial_number": h.serial_number,
    }


async def test_certificate_commands_reach_a_library_charger(
    central: Central,
    version: str,  # noqa: F811
    ca_pem: str,
) -> None:
    ours = certificate_hash(ca_pem)
    use = "CentralSystemRootCertificate" if version == "1.6" else "CSMSRootCertificate"
    script = Script(certificates=[(use, _snake(ours))], status={"DeleteCertificate": "NotFound"})
    r = central.registry
    async with charge_point(version, central, "CERTS", script) as cp:
        await boot(version, cp)
        installed = await r.send("CERTS", cmd.InstallCertificate(cmd.CertificateUse.CSMS_ROOT, ca_pem))
        assert installed == cmd.Done(cmd.Status.ACCEPTED, None)
        listed = await r.send("CERTS", cmd.GetInstalledCertificateIds((cmd.CertificateUse.CSMS_ROOT,)))
        assert listed == cmd.Done(
            cmd.Status.ACCEPTED, (cmd.InstalledCertificate(cmd.CertificateUse.CSMS_ROOT, ours),)
        )
        none = await r.send("CERTS", cmd.GetInstalledCertificateIds((cmd.CertificateUse.MANUFACTURER_ROOT,)))
        assert none == cmd.Done(cmd.Status.NOT_FOUND, ())
        gone = await r.send("CERTS", cmd.DeleteCertificate(ours))
        assert gone == cmd.Rejected(cmd.Status.NOT_FOUND)
    (asked,) = script.asked("InstallCertificate")
    assert asked == {"certificate_type": use, "certificate": ca_pem}
    (deleted,) = script.asked("DeleteCertificate")
    assert deleted == {"certificate_hash_data": _snake(ours)}


@pytest.mark.parametrize("virtual", ["1.6", "2.0.1"], indirect=True)
async def test_an_operator_installs_lists_and_deletes_our_root_on_the_virtual_charger(
    central: Central,
    virtual: VirtualCharger,
    ca_pem: str,
) -> None:
    r = central.registry

    async def operator(name: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """As the operator API and CLI do: a command from its name and JSON, its result as JSON."""
        return result_json(await r.send("VC-CERT", parse_command(name, payload)))

    ours = certificate_hash(ca_pem)
    install = {"use": "CSMSRootCertificate", "certificate": ca_pem}
    assert await operator("InstallCertificate", install) == {
        "result": "done",
        "status": "Accepted",
        "details": None,
    }
    assert await operator("InstallCertificate", install) == {  # held already: nothing changes
        "result": "done",
        "status": "Accepted",
        "details": None,
    }
    listed = await operator("GetInstalledCertificateIds", {"uses": ["CSMSRootCertificate"]})
    assert listed["details"] == [
        {
            "use": "CSMSRootCertificate",
            "hash": {
                "issuer_name_hash": ours.issuer_name_hash,
                "issuer_key_hash": ours.issuer_key_hash,
                "serial_number": ours.serial_number,
                "hash_algorithm": "SHA256",
            },
        }
    ]
    said_hash = dict(listed["details"][0]["hash"])
    assert (await operator("DeleteCertificate", {"hash": said_hash}))["status"] == "Accepted"
    assert await operator("GetInstalledCertificateIds", {"uses": ["CSMSRootCertificate"]}) == {
        "result": "done",
        "status": "NotFound",
        "details": [],
    }
    assert await operator("DeleteCertificate", {"hash": said_hash}) == {
        "result": "rejected",
        "status": "NotFound",
        "reason": None,
    }
    garbage = await operator("InstallCertificate", {"use": "CSMSRootCertificate", "certificate": "not PEM"})
    assert garbage["result"] == "rejected" and virtual.certificates.roots == []
