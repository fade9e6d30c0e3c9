"""The root package and ``hooks`` list their exports once; every listed name resolves."""

from __future__ import annotations

import ast
from pathlib import Path

import graphile_worker_cli
from graphile_worker_cli import hooks
from graphile_worker_cli.hooks import events


def _type_checking_imports(path: Path) -> dict[str, str]:
    """Name -> module of the ``from m import X as X`` lines under ``if TYPE_CHECKING``."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    for alias in statement.names:
                        assert alias.asname == alias.name, f"{alias.name}: import it as itself"
                        found[alias.name] = statement.module
    return found


def test_root_type_checking_imports_mirror_the_exports() -> None:
    imported = _type_checking_imports(Path(graphile_worker_cli.__file__))
    expected = {
        name: f"graphile_worker_cli.{module}"
        for module, names in graphile_worker_cli._EXPORTS.items() for name in names
    }
    assert imported == expected


def test_every_root_export_resolves() -> None:
    for name in graphile_worker_cli.__all__:
        assert getattr(graphile_worker_cli, name) is not None, name
    assert len(graphile_worker_cli.__all__) == len(set(graphile_worker_cli.__all__))


def test_hooks_exports_each_submodule_list() -> None:
    exported = set(hooks.__all__)
    for module in (hooks.plugins, hooks.registry, hooks.results, events):
        assert set(module.__all__) <= exported
    for name in exported:
        assert getattr(hooks, name) is not None


def test_events_list_every_event_and_context_it_defines() -> None:
    defined = {
        name for name, value in vars(events).items()
        if isinstance(value, type) and value.__module__ == events.__name__
        and not name.startswith("_")
    }
    assert defined | {"ALL_EVENTS"} == set(events.__all__)


def test_job_lock_lost_error_imports_from_the_root() -> None:
    from graphile_worker_cli import GraphileWorkerError, JobLockLostError
    from graphile_worker_cli.errors import JobLockLostError as defined

    assert JobLockLostError is defined
    assert issubclass(JobLockLostError, GraphileWorkerError)
    assert "JobLockLostError" in graphile_worker_cli.__all__
