"""``gw add-job``: queue one job and print its id.

A module of its own, so that ``gw add-job`` declares one command and imports only what adding
a job runs (``quick_add``: one connection, one statement), not the ``gw jobs`` commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphile_worker_cli.cli import common
from graphile_worker_cli.cli.commands import argument, command, option
from graphile_worker_cli.cli.job_options import (
    delay_option,
    job_to_dict,
    max_attempts_option,
    priority_option,
    run_at_option,
    when,
)
from graphile_worker_cli.errors import BadInputError

if TYPE_CHECKING:
    from graphile_worker_cli import job


def payload_argument(text: str) -> Any:
    """The payload argument; a word that is not JSON at all is named as a stray argument
    (``--delay 5 minutes`` leaves ``minutes`` where the payload goes)."""
    from graphile_worker_cli import payloads

    try:
        return payloads.parse_json_text(text)
    except BadInputError:
        if text.strip()[:1] in ("{", "[", '"') or _is_json(text):
            raise
        raise BadInputError(
            f"unexpected argument {text!r}: the payload must be a JSON object or array "
            "(does an option's value have a space in it? quote it)"
        ) from None


def _is_json(text: str) -> bool:
    import json

    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@command("add-job")
@argument("identifier", help="Task identifier.")
@argument("payload", required=False,
          help="JSON object or array (default {}); - reads standard input.")
@option("--queue", help="Named queue: its jobs run one at a time.")
@run_at_option
@delay_option
@max_attempts_option
@option("--job-key", help="Unique key to replace or remove the job.")
@option("--job-key-mode", help="replace (default), preserve_run_at, unsafe_dedupe.")
@priority_option
@option("--flag", multiple=True, help="A flag workers may refuse (repeatable).")
@common.database_options
@common.json_option
def add_job_command(
    identifier: str, payload: str | None, queue: str | None, run_at: str | None,
    delay: str | None, max_attempts: int | None, job_key: str | None, job_key_mode: str | None,
    priority: int | None, flag: tuple[str, ...], connection: str | None, schema: str | None,
    config_path: Path | None, json_output: bool,
) -> None:
    """Queue a job and print its id."""
    settings = common.load_settings(connection, schema, config_path)

    from graphile_worker_cli import job, payloads, quick_add

    async def add() -> job.Job:
        if payload == "-":
            value = payloads.parse_json_text(sys.stdin.read())
        else:
            value = payload_argument(payload) if payload is not None else {}
        if job_key_mode is not None and job_key is None:
            raise BadInputError("--job-key-mode needs --job-key")
        spec = job.JobSpec(
            queue_name=queue,
            run_at=when(run_at, delay),
            max_attempts=max_attempts,
            job_key=job_key,
            job_key_mode=job.job_key_mode(job_key_mode),
            priority=priority,
            flags=tuple(flag) if flag else None,
        )
        # Checked in the order WorkerUtils.add_raw_job checks them.
        checked_identifier = job.check_identifier(identifier)
        payload_json = payloads.raw_to_json(value)
        return await quick_add.add_prepared_job(
            settings, checked_identifier, payload_json, job.check_spec(spec)
        )

    added = common.run(add())
    if json_output:
        common.print_json(job_to_dict(added))
    else:
        sys.stdout.write(f"{added.id}\n")
