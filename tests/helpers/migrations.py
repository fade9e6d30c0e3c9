"""Migrations under test: a schema name that needs quoting everywhere, and migration files
written by hand."""

from __future__ import annotations

from pathlib import Path

ODD_SCHEMA = 'odd "name"'


def write(directory: Path, name: str, sql: str) -> None:
    (directory / name).write_text(sql, encoding="utf-8")
