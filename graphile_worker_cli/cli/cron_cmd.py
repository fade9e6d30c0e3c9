"""``gw cron check FILE`` and ``gw cron list``: validate a crontab, show known crontabs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from graphile_worker_cli.cli import common
from graphile_worker_cli.cli.commands import argument, group, option, path_type
from graphile_worker_cli.errors import EXIT_USAGE, CrontabError

if TYPE_CHECKING:
    from graphile_worker_cli import cron
else:
    cron = common.lazy_module("graphile_worker_cli.cron")

cron_group = group("cron", help="Crontab tools: validate a file, list known crontabs.")


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load(path: Path) -> list[cron.Crontab]:
    try:
        return cron.parse_crontab_file(path)
    except CrontabError as error:
        common.fail(error.message, EXIT_USAGE)


def _describe(item: cron.Crontab, runs: list[datetime]) -> dict[str, Any]:
    return {
        "id": item.identifier,
        "task": item.task_identifier,
        "pattern": item.pattern,
        "options": item.options_text(),
        "tz": item.tz.key if item.tz else None,
        "dst": item.dst.value if item.tz else None,
        "payload": item.payload,
        "next_runs": [_iso(ts) for ts in runs],
    }


@cron_group.command("check")
@argument("file", type=path_type(), help="The crontab file to validate.")
@option("--count", "-n", type=click.IntRange(1, 100), default=5,
        help="How many next run times to show.")
@common.json_option
def check_command(file: Path, count: int, json_output: bool) -> None:
    """Validate a crontab file and print each item's next run times (UTC).

    Exit code 2, with the line that is wrong, when the file is not valid.
    """
    items = _load(file)
    now = datetime.now(UTC)
    runs = [item.next_runs(now, count) for item in items]
    described = [_describe(item, item_runs) for item, item_runs in zip(items, runs, strict=True)]
    if json_output:
        common.print_json({"file": str(file), "items": described})
        return
    out = common.stdout
    noun = "item" if len(items) == 1 else "items"
    out.print(f"{file}: {len(items)} {noun}, valid", highlight=False, markup=False)
    for item, info, item_runs in zip(items, described, runs, strict=True):
        options = f" ?{info['options']}" if info["options"] else ""
        out.print(
            f"\n{item.identifier}: {item.pattern} {item.task_identifier}{options}",
            highlight=False, markup=False, soft_wrap=True,
        )
        for ts in item_runs:
            local = f"  ({ts.astimezone(item.tz):%Y-%m-%d %H:%M %Z})" if item.tz else ""
            out.print(f"  {_iso(ts)}{local}", highlight=False, markup=False)
        if not info["next_runs"]:
            out.print("  never (no matching date in the next 8 years)", markup=False)


@cron_group.command("list")
@common.database_options
@option("--crontab", type=path_type(),
        help="Crontab file for next run times (default: config, ./crontab).")
@common.json_option
def list_command(
    connection: str | None, schema: str | None, config_path: Path | None,
    crontab: Path | None, json_output: bool,
) -> None:
    """Show the crontabs the database knows: id, known since, last execution, next run."""
    settings = common.load_settings(connection, schema, config_path)
    path = crontab or settings.crontab or (Path("crontab") if Path("crontab").is_file() else None)
    items = {item.identifier: item for item in _load(path)} if path else {}
    from graphile_worker_cli.cron import store

    rows = common.run(store.known_crontabs(settings))
    now = datetime.now(UTC)
    listed = []
    for row in rows:
        item = items.get(row.identifier)
        runs = item.next_runs(now, 1) if item else []
        listed.append({
            "id": row.identifier,
            "known_since": _iso(row.known_since),
            "last_execution": _iso(row.last_execution),
            "next_run": _iso(runs[0]) if runs else None,
            "in_crontab": item is not None,
        })
    known = {row.identifier for row in rows}
    unregistered = [i for i in items if i not in known]
    if json_output:
        common.print_json({"crontabs": listed, "not_yet_known": unregistered})
        return
    _print_table(listed, unregistered, with_next=bool(items))


def _print_table(listed: list[dict[str, Any]], unregistered: list[str], with_next: bool) -> None:
    if not listed:
        common.stdout.print("No known crontabs.", markup=False)
    else:
        headers = ["id", "known since", "last execution"] + (["next run"] if with_next else [])
        table = common.table(*headers, box=None, pad_edge=False)
        for entry in listed:
            cells = [entry["id"], entry["known_since"], entry["last_execution"] or "never"]
            if with_next:
                cells.append(entry["next_run"] or "not in crontab")
            table.add_row(*cells)
        common.stdout.print(table)
    for identifier in unregistered:
        common.stdout.print(
            f"{identifier}: in the crontab, not known yet (a worker registers it on start)",
            highlight=False, markup=False,
        )
