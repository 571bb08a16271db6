"""Names in a shared Redis: processes serving one database share them; other deployments (and other
test runs) on the same Redis do not."""

from __future__ import annotations

import hashlib


def namespace_for(database_url: str) -> str:
    return "chargeshare:" + hashlib.sha256(database_url.encode()).hexdigest()[:16]
