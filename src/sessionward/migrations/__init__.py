"""Alembic migrations, shipped inside the package so ``sessionward migrate`` works from a wheel."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from sessionward.db import Database

HERE = Path(__file__).parent


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    """Apply pending migrations on the writer connection."""

    def run(sync_conn: object) -> None:
        config = alembic_config(db.url)
        config.attributes["connection"] = sync_conn
        command.upgrade(config, revision)

    async with db.writer.connect() as conn:
        await conn.run_sync(run)
        await conn.commit()


def upgrade_sync(url: str, revision: str = "head") -> None:
    async def main() -> None:
        db = Database(url)
        try:
            await upgrade(db, revision)
        finally:
            await db.dispose()

    asyncio.run(main())
