"""The statements of the migrator (run by ``migrate``): its two ledgers, the server
version, the advisory lock and the ``worker:migrate`` notification. The steps themselves
are files in ``sql/``."""

from __future__ import annotations

from graphile_worker_cli.queries import Query

LEDGER_TABLE = "migrations"
"""The reference's ledger: one row per applied step, with its ``breaking`` flag."""
GW_LEDGER_TABLE = "_gw_migrations"
"""gw's own ledger (steps in ``sql/gw/``)."""
MIGRATE_CHANNEL = "worker:migrate"
"""Notified after each reference step, with its number and whether it is breaking."""

SERVER_VERSION_NUM = Query(
    "select current_setting('server_version_num')::int", "SERVER_VERSION_NUM"
)

# $1 the ledger, $2 gw's ledger, each as a quoted qualified name (to_regclass takes text,
# so the names are values here, not part of the statement). Returns whether the ledger
# exists, whether it has the breaking column, and whether gw's ledger exists.
LEDGER_SHAPE = Query(
    """
select to_regclass($1) is not null,
       exists(select 1 from pg_attribute
               where attrelid = to_regclass($1) and attname = 'breaking'
                 and not attisdropped),
       to_regclass($2) is not null
""",
    "LEDGER_SHAPE",
)

# The ledger's latest step and latest breaking step.
LATEST_STEPS = Query(
    f"select max(id) as latest, max(id) filter (where breaking) as latest_breaking"
    f" from {{s}}.{LEDGER_TABLE}",
    "LATEST_STEPS",
)

# The same for a ledger older than the breaking column (latest_breaking is null).
LATEST_STEPS_WITHOUT_BREAKING = Query(
    f"select max(id) as latest, null::int as latest_breaking from {{s}}.{LEDGER_TABLE}",
    "LATEST_STEPS_WITHOUT_BREAKING",
)

LATEST_GW_STEP = Query(f"select max(id) from {{s}}.{GW_LEDGER_TABLE}", "LATEST_GW_STEP")

# Every gw step in the ledger (gw's steps may be applied out of number order).
GW_STEPS = Query(f"select id from {{s}}.{GW_LEDGER_TABLE}", "GW_STEPS")

# $1 the lock key: held until the transaction ends.
ADVISORY_XACT_LOCK = Query("select pg_advisory_xact_lock($1)", "ADVISORY_XACT_LOCK")

# No parameters (several statements: run with execute and no arguments).
CREATE_LEDGERS = Query(
    f"""
create schema if not exists {{s}};
create table if not exists {{s}}.{LEDGER_TABLE} (
  id int primary key,
  ts timestamptz default now() not null
);
alter table {{s}}.{LEDGER_TABLE}
  add column if not exists breaking boolean not null default false;
create table if not exists {{s}}.{GW_LEDGER_TABLE} (
  id int primary key,
  name text not null,
  ts timestamptz not null default now()
);
""",
    "CREATE_LEDGERS",
)

# $1 the numbers of the breaking steps: marks them in a ledger that predates the column.
MARK_BREAKING = Query(
    f"update {{s}}.{LEDGER_TABLE} set breaking = true"
    " where id = any($1::int[]) and not breaking",
    "MARK_BREAKING",
)

# $1 step number, $2 breaking.
RECORD_STEP = Query(
    f"insert into {{s}}.{LEDGER_TABLE} (id, breaking) values ($1, $2)", "RECORD_STEP"
)

# $1 step number, $2 step name.
RECORD_GW_STEP = Query(
    f"insert into {{s}}.{GW_LEDGER_TABLE} (id, name) values ($1, $2)", "RECORD_GW_STEP"
)

# $1 channel, $2 payload.
NOTIFY = Query("select pg_notify($1, $2)", "NOTIFY")

# A migration run inside a caller's transaction (``conn=`` of any driver) puts each step,
# and the bootstrap, in a savepoint: a step another migrator applied first is rolled back
# alone, and the caller's transaction goes on.
SAVEPOINT = Query("savepoint gw_migrate_step", "SAVEPOINT")
ROLLBACK_TO_SAVEPOINT = Query("rollback to savepoint gw_migrate_step", "ROLLBACK_TO_SAVEPOINT")
RELEASE_SAVEPOINT = Query("release savepoint gw_migrate_step", "RELEASE_SAVEPOINT")
