"""The SQL adapter: SQLite (file or memory, R*Tree) or PostgreSQL (PostGIS, exclusion constraint)."""

from chargeshare.adapters.sql.store import SqlStore, SqlUnitOfWork

__all__ = ["SqlStore", "SqlUnitOfWork"]
