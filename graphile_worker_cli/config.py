"""Settings: defaults < TOML file < environment < CLI flags.

SKELETON — the config owner replaces the loading logic; the field names below are the
contract other modules rely on (TOML key = field name, env GW_<NAME>).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field


class Settings(BaseModel):
    database_url: str | None = None
    schema_name: str = Field("graphile_worker", alias="schema")
    embedded_data_dir: Path = Path(".gw/pgdata")

    concurrency: int = 10
    poll_interval: float = 2.0
    max_pg_conn: int = 10
    tasks: Path | None = None
    tasks_modules: list[str] = []
    crontab: Path | None = None
    forbidden_flags: list[str] = []
    migrate: bool = True
    shutdown_grace_period: float = 30.0
    shutdown_interrupted_job_retry_delay: float = 1.0
    log_format: str = "auto"
    log_level: str = "info"

    model_config = {"populate_by_name": True}


def load_settings(config_path: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    return Settings(**values)
