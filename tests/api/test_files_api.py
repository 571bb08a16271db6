"""The file locations: a firmware image published by an operator and served by its token alone, a
log slot that takes one upload (raw or a multipart form), and what an operator reads back."""

from __future__ import annotations

import hashlib

import pytest

from chargeshare.entrypoints.api import routes_files
from tests.api.world import client, world


async def test_firmware_is_published_served_and_listed() -> None:
    with world() as w:
        admin = w.admin.headers
        image = b"\x7fELF firmware 2.0" * 100
        async with client(w.app) as http:
            made = await http.post("/admin/firmware?name=fw-2.0.bin", content=image, headers=admin)
            assert made.status_code == 201, made.text
            out = made.json()
            assert (out["kind"], out["size"], out["sha256"]) == (
                "firmware",
                len(image),
                hashlib.sha256(image).hexdigest(),
            )
            assert out["url"] == f"http://api/files/{out['token']}"
            served = await http.get(f"/files/{out['token']}")  # no credentials: the token is the key
            assert served.status_code == 200 and served.content == image
            assert served.headers["content-type"] == "application/octet-stream"
            assert [f["name"] for f in (await http.get("/admin/firmware", headers=admin)).json()] == [
                "fw-2.0.bin"
            ]
            assert (await http.post("/admin/firmware?name=x", content=image)).status_code == 401
            empty = await http.post("/admin/firmware?name=x", content=b"", headers=admin)
            assert empty.status_code == 400 and "empty" in empty.json()["detail"]
            slashed = await http.post("/admin/firmware?name=a/b", content=image, headers=admin)
            assert slashed.status_code == 400
            # An image is no upload location, and a guess finds nothing.
            assert (await http.put(f"/files/{out['token']}", content=b"x")).status_code == 404
            assert (await http.get("/files/" + "A" * 43)).status_code == 404


async def test_a_log_slot_takes_one_upload_which_the_operator_reads() -> None:
    with world() as w:
        admin, cp_id = w.admin.headers, w.mine.charge_point_id
        raw, form = w.app.files.log_slot(cp_id), w.app.files.log_slot(cp_id)
        async with client(w.app) as http:
            assert (await http.get(f"/admin/files/{raw.token}", headers=admin)).status_code == 404  # not yet
            put = await http.put(f"/files/{raw.token}", content=b"line 1\nline 2\n")
            assert put.status_code == 201 and put.json()["size"] == 14
            again = await http.post(f"/files/{raw.token}", content=b"other")
            assert again.status_code == 409  # one upload per location: ask the charger again
            files = {"file": ("diag.zip", b"PK zipped log", "application/zip")}
            assert (await http.post(f"/files/{form.token}", files=files)).status_code == 201
            read = await http.get(f"/admin/files/{form.token}", headers=admin)
            assert read.status_code == 200 and read.content == b"PK zipped log"
            assert (await http.get(f"/files/{raw.token}")).status_code == 404  # logs are not served
            assert (await http.get(f"/admin/files/{raw.token}")).status_code == 401
            listed = (await http.get(f"/admin/chargers/{w.mine.charger_id}/logs", headers=admin)).json()
            assert [f["size"] for f in listed] == [14, 13]


async def test_odd_names_and_bodies_are_refused_or_said_safely(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by an adversarial pass: a non-Latin-1 name made every download a 500, a quote in a
    name wrote parameters into the header, a multipart file part was read whole past the limit,
    and a mixed-case multipart type was stored envelope and all."""
    with world() as w:
        admin, cp_id = w.admin.headers, w.mine.charge_point_id
        async with client(w.app) as http:
            made = await http.post(
                "/admin/firmware", params={"name": "прошивка-2.0.bin"}, content=b"fw", headers=admin
            )
            assert made.status_code == 201, made.text
            served = await http.get(f"/files/{made.json()['token']}")
            assert served.status_code == 200 and served.content == b"fw"
            assert served.headers["content-disposition"] == (
                'attachment; filename="________-2.0.bin"; '
                "filename*=UTF-8''%D0%BF%D1%80%D0%BE%D1%88%D0%B8%D0%B2%D0%BA%D0%B0-2.0.bin"
            )
            for bad in ('ok.bin"; filename*=evil', "fw\r\nX-Evil: 1", "back\\slash"):
                refused = await http.post(
                    "/admin/firmware", params={"name": bad}, content=b"fw", headers=admin
                )
                assert refused.status_code == 400, bad
            slot = w.app.files.log_slot(cp_id)
            mixed = {"Content-Type": "Multipart/Form-Data; boundary=XyZ"}
            envelope = (
                b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="l.txt"\r\n\r\n'
                b"log\r\n--XyZ--\r\n"
            )
            assert (
                await http.put(f"/files/{slot.token}", content=envelope, headers=mixed)
            ).status_code == 201
            assert w.app.files.uploaded(slot.token)[1] == b"log"
            monkeypatch.setattr(routes_files, "MAX_FILE_BYTES", 1_000)
            big = w.app.files.log_slot(cp_id)
            files = {"file": ("big.bin", b"x" * 100_000, "application/octet-stream")}
            too_big = await http.post(f"/files/{big.token}", files=files)
            assert too_big.status_code == 400 and "at most" in too_big.json()["detail"]
            assert (await http.put(f"/files/{big.token}", content=b"x" * 1_001)).status_code == 400
            assert w.app.files.awaiting_upload(big.token).size is None  # refused whole: still open
            # A made-up location is refused before its body is read.
            assert (await http.post("/files/" + "Z" * 20, files=files)).status_code == 404
