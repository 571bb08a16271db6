"""`chargeshare ca`: an authority made, a charger's certificate issued, listed and revoked, and the
mistakes a user makes answered in one line with exit code 2."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from chargeshare.adapters.charger_ca import CertificateAuthority
from chargeshare.cli import errors
from chargeshare.cli.app import app
from tests.cli_runner import CliRunner

runner = CliRunner()


def test_init_issue_list_revoke(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    made = runner.invoke(app, ["ca", "init", "--dir", str(ca), "--organisation", "Acme Charging"])
    assert made.exit_code == 0, made.output
    assert "serve --ca-dir" in made.output
    issued = runner.invoke(app, ["ca", "issue", "CP-7", "--dir", str(ca), "--out", str(tmp_path / "cp")])
    assert issued.exit_code == 0, issued.output
    cert = x509.load_pem_x509_certificate((tmp_path / "cp" / "CP-7.pem").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-7"
    cert.verify_directly_issued_by(CertificateAuthority(ca).cert)
    assert stat.S_IMODE((tmp_path / "cp" / "CP-7-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((ca / "ca-key.pem").stat().st_mode) == 0o600
    listed = runner.invoke(app, ["ca", "list", "--dir", str(ca), "--json", "-"])
    rows = json.loads(listed.stdout)
    assert [(r["charge_point_id"], r["serial"], r["revoked_at"]) for r in rows] == [
        ("CP-7", f"{cert.serial_number:x}", None)
    ]
    revoked = runner.invoke(app, ["ca", "revoke", "CP-7", "--dir", str(ca)])
    assert revoked.exit_code == 0 and "revoked 1 certificate" in revoked.output
    assert cert.serial_number in CertificateAuthority(ca).revoked_serials()
    again = runner.invoke(app, ["ca", "revoke", "CP-7", "--dir", str(ca)])
    assert again.exit_code == errors.USAGE and "revoked already" in again.output


def test_mistakes_are_one_line_with_exit_code_2(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["ca", "issue", "CP-1", "--dir", str(tmp_path / "nothing")])
    assert missing.exit_code == errors.USAGE
    assert "is not a certificate authority" in missing.output and "chargeshare ca init" in missing.output
    assert "Traceback" not in missing.output
    assert runner.invoke(app, ["ca", "init", "--dir", str(tmp_path / "ca")]).exit_code == 0
    twice = runner.invoke(app, ["ca", "init", "--dir", str(tmp_path / "ca")])
    assert twice.exit_code == errors.USAGE and "already holds a certificate authority" in twice.output
    no_ca = runner.invoke(app, ["serve", "--require-client-cert", "--port", "0"])
    assert no_ca.exit_code == errors.USAGE and "needs --ca-dir" in no_ca.output
