"""The backend ships alone: no module of `chargeshare` outside the CLI's glue imports `simulators`
(the virtual chargers, the DES, the certifier's virtual-charger drivers live there)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The CLI is where the testbed's commands meet the backend; migrations' env runs only under Alembic.
GLUE = ("chargeshare.cli", "chargeshare.adapters.sql.migrations", "chargeshare.__main__")

IMPORT_ALL = """
import importlib, pkgutil, sys
import chargeshare
glue = {glue!r}
names = [m.name for m in pkgutil.walk_packages(chargeshare.__path__, "chargeshare.")]
for name in names:
    if not name.startswith(glue):
        importlib.import_module(name)
print(len(names))
print(sorted(m for m in sys.modules if m == "simulators" or m.startswith("simulators.")))
"""


@pytest.mark.slow  # a fresh interpreter importing the whole backend
def test_no_backend_module_imports_the_simulators() -> None:
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_ALL.format(glue=GLUE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert int(out[0]) > 100  # it did walk the package
    assert out[1] == "[]"
