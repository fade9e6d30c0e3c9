"""The statements of the migrator: its two ledgers, the server version, the advisory lock
and the ``worker:migrate`` notification. The steps themselves are files in ``sql/``."""

from __future__ import annotations

import asyncpg

from graphile_worker_cli import db

LEDGER_TABLE = "migrations"
"""The reference's ledger: one row per applied step, with its ``breaking`` flag."""
GW_LEDGER_TABLE = "_gw_migrations"
"""gw's own ledger (steps in ``sql/gw/``)."""
MIGRATE_CHANNEL = "worker:migrate"
"""Notified after each reference step, with its number and whether it is breaking."""


def _ledgers(schema: str) -> tuple[str, str]:
    quoted = db.escape_identifier(schema)
    return f"{quoted}.{LEDGER_TABLE}", f"{quoted}.{GW_LEDGER_TABLE}"


async def server_version_num(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("select current_setting('server_version_num')"))


async def ledger_shape(conn: asyncpg.Connection, schema: str) -> tuple[bool, bool, bool]:
    """Whether the ledger exists, whether it has the ``breaking`` column, and whether gw's
    ledger exists."""
    ledger, gw_ledger = _ledgers(schema)
    row = await conn.fetchrow(
        """
        select to_regclass($1) is not null,
               exists(select 1 from pg_attribute
                       where attrelid = to_regclass($1) and attname = 'breaking'
                         and not attisdropped),
               to_regclass($2) is not null
        """,
        ledger,
        gw_ledger,
    )
    assert row is not None
    return bool(row[0]), bool(row[1]), bool(row[2])


async def latest_steps(
    conn: asyncpg.Connection, schema: str, *, has_breaking: bool
) -> tuple[int | None, int | None]:
    """The ledger's latest step and latest breaking step (None without the column)."""
    ledger, _ = _ledgers(schema)
    breaking = "max(id) filter (where breaking)" if has_breaking else "null::int"
    row = await conn.fetchrow(
        f"select max(id) as latest, {breaking} as latest_breaking from {ledger}"
    )
    assert row is not None
    return row["latest"], row["latest_breaking"]


async def latest_gw_step(conn: asyncpg.Connection, schema: str) -> int | None:
    _, gw_ledger = _ledgers(schema)
    latest: int | None = await conn.fetchval(f"select max(id) from {gw_ledger}")
    return latest


async def create_ledgers(
    conn: asyncpg.Connection, schema: str, lock_key: int, breaking: list[int]
) -> None:
    """Within the caller's transaction, under the advisory lock ``lock_key``: create the
    schema and both ledgers when missing, and mark the ``breaking`` steps in a ledger that
    predates the column."""
    quoted = db.escape_identifier(schema)
    ledger, gw_ledger = _ledgers(schema)
    await conn.execute("select pg_advisory_xact_lock($1)", lock_key)
    await conn.execute(f"""
        create schema if not exists {quoted};
        create table if not exists {ledger} (
          id int primary key,
          ts timestamptz default now() not null
        );
        alter table {ledger}
          add column if not exists breaking boolean not null default false;
        create table if not exists {gw_ledger} (
          id int primary key,
          name text not null,
          ts timestamptz not null default now()
        );
    """)
    await conn.execute(
        f"update {ledger} set breaking = true where id = any($1::int[]) and not breaking",
        breaking,
    )


async def record_step(
    conn: asyncpg.Connection, schema: str, number: int, breaking: bool
) -> None:
    ledger, _ = _ledgers(schema)
    await conn.execute(f"insert into {ledger} (id, breaking) values ($1, $2)", number, breaking)


async def record_gw_step(conn: asyncpg.Connection, schema: str, number: int, name: str) -> None:
    _, gw_ledger = _ledgers(schema)
    await conn.execute(f"insert into {gw_ledger} (id, name) values ($1, $2)", number, name)


async def notify(conn: asyncpg.Connection, channel: str, payload: str) -> None:
    await conn.execute("select pg_notify($1, $2)", channel, payload)
