"""`chargeshare ca`: the certificate authority of OCPP security profile 3 (a directory of files)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chargeshare.cli.errors import USAGE, Problem
from chargeshare.cli.options import chatter, json_list_option, write_rows

app = typer.Typer(
    help="The certificate authority for chargers' TLS client certificates (security profile 3).",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)

CaDir = Annotated[
    Path,
    typer.Option(
        "--dir", envvar="CHARGESHARE_CA_DIR", help="The authority's directory (serve --ca-dir takes it)."
    ),
]


def _open(directory: Path) -> Any:
    from chargeshare.adapters.charger_ca import CaError, CertificateAuthority

    try:
        return CertificateAuthority(directory)
    except CaError as exc:
        raise Problem(str(exc), USAGE) from None


@app.command("init")
def init(
    directory: CaDir,
    organisation: Annotated[
        str, typer.Option(help="The operator's name, in every certificate's organizationName.")
    ] = "ChargeShare",
    host: Annotated[
        list[str] | None,
        typer.Option(
            help="A name or address the server is reached by (repeat it); default 127.0.0.1 and localhost."
        ),
    ] = None,
) -> None:
    """Make a new authority: its key and certificate, and the server's certificate for the hosts."""
    from chargeshare.adapters.charger_ca import DEFAULT_HOSTS, CaError, CertificateAuthority

    try:
        CertificateAuthority.init(directory, organisation, tuple(host or DEFAULT_HOSTS))
    except CaError as exc:
        raise Problem(str(exc), USAGE) from None
    chatter(console).print(
        f"certificate authority made in {directory}; serve it with `chargeshare serve --ca-dir {directory}`"
    )


@app.command("issue")
def issue(
    charge_point_id: Annotated[str, typer.Argument(help="The charger the certificate names.")],
    directory: CaDir,
    out: Annotated[
        Path,
        typer.Option(help="Where to write CP.pem and CP-key.pem (made if missing)."),
    ] = Path("."),
) -> None:
    """A key and client certificate for a charger, as its maker would install them (a charger may
    also ask for one itself, SignCertificate, once connected)."""
    ca = _open(directory)
    cert, key = ca.issue(charge_point_id)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{charge_point_id}.pem").write_bytes(cert)
    key_path = out / f"{charge_point_id}-key.pem"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), 0o600)  # a key file already there keeps its mode otherwise
        f.write(key)
    chatter(console).print(f"wrote {out / (charge_point_id + '.pem')} and {key_path}")


@app.command("revoke")
def revoke(
    charge_point_id: Annotated[str, typer.Argument(help="Every certificate issued to this charger.")],
    directory: CaDir,
) -> None:
    """Revoke a charger's certificates: its next TLS upgrade is refused (401), on every server
    process reading this directory, and no SignCertificate of it is signed until `ca issue` gives it
    a new certificate (a link already open stays open)."""
    ca = _open(directory)
    if charge_point_id in ca.blocked():
        raise Problem(f"{charge_point_id}'s certificates are revoked already", USAGE)
    serials = ca.revoke(charge_point_id)
    chatter(console).print(
        f"revoked {len(serials)} certificate(s) of {charge_point_id}; it may have none signed until "
        f"`chargeshare ca issue {charge_point_id}`"
    )


@app.command("list")
def list_issued(
    directory: CaDir,
    json_out: Annotated[Path | None, json_list_option()] = None,
) -> None:
    """Every certificate the authority issued, with its serial and whether it is revoked."""
    issued = _open(directory).issued()
    rows = [
        {
            "serial": f"{i.serial:x}",
            "charge_point_id": i.cp_id,
            "not_after": i.not_after.isoformat(),
            "revoked_at": None if i.revoked_at is None else i.revoked_at.isoformat(),
        }
        for i in issued
    ]
    if json_out is not None:
        write_rows(json_out, rows)
        return
    table = Table("charger", "serial", "valid until", "revoked")
    for r in rows:
        table.add_row(r["charge_point_id"], r["serial"], r["not_after"], r["revoked_at"] or "")
    console.print(table)
    console.print(f"{len(rows)} certificates")
