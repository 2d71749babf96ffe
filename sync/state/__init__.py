"""All SQL lives here: the schema, the StateStore and the Alembic migrations."""

from sync.state.store import StateStore

__all__ = ["StateStore"]
