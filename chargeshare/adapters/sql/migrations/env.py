"""Alembic's environment: migrations run on the connection `chargeshare.adapters.sql.migrate` hands in."""

from __future__ import annotations

from alembic import context

from chargeshare.adapters.sql.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
