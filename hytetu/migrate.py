"""Schema migrations (Alembic), run from the CLI and the flows: ``hytetu db upgrade``."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

import migrations
from hytetu.db import database_url


def alembic_config(url: str | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", (url or database_url()).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None) -> None:
    """Bring the database at ``url`` to the newest schema (creates it when empty)."""
    command.upgrade(alembic_config(url), "heads")
