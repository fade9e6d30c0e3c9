"""gw's migration files without a database: the twenty reference steps and their breaking
flags, the schema placeholder, gw's own file names, the oldest PostgreSQL supported."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphile_worker_cli import migrate
from graphile_worker_cli.errors import MigrationError
from tests.helpers.migrations import ODD_SCHEMA, write

# --- the files -------------------------------------------------------------------------


def test_twenty_files_with_breaking_markers_matching_the_ledger_flags() -> None:
    steps = migrate.reference_migrations()
    assert [step.number for step in steps] == list(range(1, 21))
    assert migrate.LATEST_MIGRATION == 20
    assert migrate.BREAKING_MIGRATIONS == (1, 3, 11, 13, 14, 16, 19)
    for step in steps:
        marked = step.path.read_text().startswith("--! breaking")
        assert marked == step.breaking, step.path.name


def test_sql_files_never_name_the_schema_literally() -> None:
    reference = migrate.REFERENCE_MIGRATIONS_DIR.glob("*.sql")
    paths = [*reference, *migrate.GW_MIGRATIONS_DIR.glob("*.sql")]
    for path in paths:
        text = path.read_text()
        assert "graphile_worker." not in text, path.name
        assert "__SCHEMA__" in text or path.name == "000019.sql", path.name


def test_placeholder_is_replaced_by_the_quoted_name() -> None:
    step = migrate.reference_migrations()[0]
    sql = step.sql(ODD_SCHEMA)
    assert "__SCHEMA__" not in sql
    assert 'create table "odd ""name""".job_queues' in sql


@pytest.mark.parametrize("name", ["1_short.sql", "000001-dash.sql", "000001_Upper.sql"])
def test_bad_gw_migration_file_names_are_rejected(tmp_path: Path, name: str) -> None:
    write(tmp_path, name, "select 1;")
    with pytest.raises(MigrationError, match=r"NNNNNN_name\.sql"):
        migrate.gw_migrations(tmp_path)


def test_duplicate_gw_migration_numbers_are_rejected(tmp_path: Path) -> None:
    write(tmp_path, "000001_a.sql", "select 1;")
    write(tmp_path, "000001_b.sql", "select 1;")
    with pytest.raises(MigrationError, match="numbered 1"):
        migrate.gw_migrations(tmp_path)


@pytest.mark.parametrize(("version_num", "supported"), [
    (110022, False), (119999, False), (120000, True), (150019, True), (170000, True),
])
def test_servers_older_than_postgresql_12_are_refused(version_num: int, supported: bool) -> None:
    """This machine only has PostgreSQL 15, so the threshold is checked on the number the
    server reports (`server_version_num`); the live path is the same call."""
    from graphile_worker_cli.errors import UnsupportedServerError

    if supported:
        migrate.require_supported_server(version_num)
        return
    with pytest.raises(UnsupportedServerError) as raised:
        migrate.require_supported_server(version_num)
    assert raised.value.message == (
        f"PostgreSQL 12 or newer is required (the server reports version number {version_num})"
    )
