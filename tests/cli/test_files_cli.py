"""`chargeshare files`: an image published and listed, a charger's upload location made, and
what arrived there written out."""

from __future__ import annotations

import json
from pathlib import Path

from chargeshare.bootstrap import Config, build
from chargeshare.cli import errors
from chargeshare.cli.app import app
from tests.cli_runner import CliRunner
from tests.conftest import add_charger

runner = CliRunner()


def test_publish_slot_list_and_get(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cs.db'}"
    backend = build(Config(database_url=url, password_hash="fast"))
    try:
        add_charger(backend, "CP1", online=False)
    finally:
        backend.close()
    db = ["--database-url", url]
    base = ["--base-url", "http://10.0.0.5:8000/"]
    image = tmp_path / "fw-3.1.bin"
    image.write_bytes(b"image" * 10)
    published = runner.invoke(app, ["files", "publish", str(image), *base, *db])
    assert published.exit_code == 0, published.output
    assert published.stdout.startswith("http://10.0.0.5:8000/files/")
    listed = json.loads(runner.invoke(app, ["files", "list", "--json", "-", *db]).stdout)
    assert [(r["name"], r["size"], r["url"]) for r in listed] == [
        ("fw-3.1.bin", 50, "/files/" + listed[0]["token"])
    ]
    made = runner.invoke(app, ["files", "slot", "CP1", *base, *db])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip().rsplit("/", 1)[-1]
    early = runner.invoke(app, ["files", "get", token, "-o", str(tmp_path / "log.txt"), *db])
    assert early.exit_code == errors.USAGE and "nothing has been uploaded" in early.output
    backend = build(Config(database_url=url, password_hash="fast"))
    try:
        backend.files.receive(token, b"the charger's log\n")
    finally:
        backend.close()
    got = runner.invoke(app, ["files", "get", made.stdout.strip(), "-o", str(tmp_path / "log.txt"), *db])
    assert got.exit_code == 0, got.output
    assert (tmp_path / "log.txt").read_bytes() == b"the charger's log\n"
    logs = json.loads(runner.invoke(app, ["files", "list", "--charger", "CP1", "--json", "-", *db]).stdout)
    assert [(r["charge_point_id"], r["size"]) for r in logs] == [("CP1", 18)]
    unknown = runner.invoke(app, ["files", "slot", "NOPE", *db])
    assert unknown.exit_code == errors.USAGE
