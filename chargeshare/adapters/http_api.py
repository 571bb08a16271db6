"""The server's entry point, kept where others import it from: see `chargeshare.adapters.api`."""

from __future__ import annotations

from chargeshare.adapters.api import STATUS_OF, create_api

__all__ = ["STATUS_OF", "create_api"]
