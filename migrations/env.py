"""Alembic environment: the models of hytetu.db, the URL from hytetu's settings."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from hytetu.db import Base, database_url

config = context.config
url = config.get_main_option("sqlalchemy.url") or database_url()


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = engine_from_config(
        {"sqlalchemy.url": url}, prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as conn:
        _migrate(conn)
        conn.commit()


def _migrate(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
