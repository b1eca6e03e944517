"""Schema migrations (Alembic), run from the CLI and the flows: ``hytetu db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext

import migrations
from hytetu.db import database_url, get_engine


def alembic_config(url: str | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return cfg


def current_revisions(url: str | None = None) -> set[str]:
    """The schema revisions the database at ``url`` is at; empty for a new database."""
    with get_engine(url).connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def upgrade(url: str | None = None) -> tuple[set[str], set[str]]:
    """Bring the database at ``url`` to the newest schema (creates it when empty).
    Returns the revisions before and after."""
    before = current_revisions(url)
    command.upgrade(alembic_config(url), "heads")
    return before, current_revisions(url)
