"""HookRegistry semantics and plugin loading, without a database."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from graphile_worker_cli import hooks, job
from graphile_worker_cli.errors import (
    JobScheduleFailedError,
    JobScheduleSkippedError,
    PluginLoadError,
)
from graphile_worker_cli.hooks import HookResult, JobRecoveryResult, JobScheduleResult


def a_job(**fields: Any) -> job.Job:
    now = datetime.now(UTC)
    values: dict[str, Any] = dict(
        id=1, task_identifier="t", queue_name=None, payload={"a": 1}, priority=0, run_at=now,
        attempts=1, max_attempts=25, last_error=None, created_at=now, updated_at=now,
        key=None, locked_at=now, locked_by="w", revision=0, flags=None,
    )
    values.update(fields)
    return job.Job(**values)


# --- registry ------------------------------------------------------------------------------


def test_empty_registry_is_inactive_and_registration_activates_it() -> None:
    registry = hooks.HookRegistry()
    assert not registry.active and registry.is_empty()
    assert hooks.JobStart not in registry
    registry.on(hooks.JobStart, lambda ctx: None)
    assert registry.active and hooks.JobStart in registry.events
    assert hooks.JobComplete not in registry


def test_on_rejects_what_is_not_an_event_or_not_callable() -> None:
    registry = hooks.HookRegistry()
    with pytest.raises(TypeError, match="not a hook event"):
        registry.on(int, print)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not callable"):
        registry.on(hooks.JobStart, 42)  # type: ignore[arg-type]


async def test_observers_run_in_order_sync_and_async_and_a_raising_one_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def first(ctx: hooks.JobStartContext) -> None:
        calls.append(f"first {ctx.job.id}")

    def broken(ctx: hooks.JobStartContext) -> None:
        raise RuntimeError("boom")

    async def last(ctx: hooks.JobStartContext) -> None:
        calls.append(f"last {ctx.worker_id}")

    registry = hooks.HookRegistry().on(hooks.JobStart, first).on(hooks.JobStart, broken)
    registry.on(hooks.JobStart, last)
    with caplog.at_level(logging.ERROR, "gw.hooks"):
        await registry.emit(hooks.JobStart, hooks.JobStartContext(a_job(id=7), "w1"))
    assert calls == ["first 7", "last w1"]
    assert "JobStart hook" in caplog.text and "RuntimeError: boom" in caplog.text


async def test_first_terminal_interceptor_decides_and_a_raising_one_fails() -> None:
    seen: list[str] = []

    def carry_on(ctx: hooks.BeforeJobRunContext) -> None:
        seen.append("carry_on")

    def skip(ctx: hooks.BeforeJobRunContext) -> HookResult:
        seen.append("skip")
        return HookResult.SKIP

    def never(ctx: hooks.BeforeJobRunContext) -> HookResult:
        seen.append("never")
        return HookResult.fail("no")

    registry = hooks.HookRegistry()
    for handler in (carry_on, skip, never):
        registry.on(hooks.BeforeJobRun, handler)
    ctx = hooks.BeforeJobRunContext(a_job(), "w")
    assert await registry.before_job_run(ctx) == HookResult.SKIP
    assert seen == ["carry_on", "skip"]

    def raises(ctx: hooks.BeforeJobRunContext) -> HookResult:
        raise ValueError("hook exploded")

    failing = hooks.HookRegistry().on(hooks.BeforeJobRun, raises)
    result = await failing.before_job_run(ctx)
    assert result == HookResult.fail("ValueError: hook exploded")
    wrong = hooks.HookRegistry().on(hooks.AfterJobRun, lambda c: "yes")  # type: ignore[arg-type,return-value]
    after = hooks.AfterJobRunContext(a_job(), "w", outcome=_success(), duration=0.1)
    outcome = await wrong.after_job_run(after)
    assert outcome.action is hooks.results.Action.FAIL
    assert "expected a HookResult" in (outcome.message or "")
    assert await hooks.HookRegistry().after_job_run(after) == HookResult.CONTINUE


def _success() -> Any:
    from graphile_worker_cli import tasks

    return tasks.TaskSuccess()


async def test_before_job_schedule_chains_payloads_then_skip_or_fail_raise() -> None:
    registry = hooks.HookRegistry()
    registry.on(hooks.BeforeJobSchedule,
                lambda c: JobScheduleResult.continue_with({**c.payload, "one": 1}))
    registry.on(hooks.BeforeJobSchedule, lambda c: None)
    registry.on(hooks.BeforeJobSchedule,
                lambda c: JobScheduleResult.continue_with({**c.payload, "two": 2}))
    ctx = hooks.BeforeJobScheduleContext("t", {"x": 0}, job.JobSpec())
    assert await registry.before_job_schedule(ctx) == {"x": 0, "one": 1, "two": 2}

    skipping = hooks.HookRegistry().on(hooks.BeforeJobSchedule, lambda c: JobScheduleResult.SKIP)
    with pytest.raises(JobScheduleSkippedError):
        await skipping.before_job_schedule(ctx)
    refusing = hooks.HookRegistry().on(
        hooks.BeforeJobSchedule, lambda c: JobScheduleResult.fail("quota exceeded")
    )
    with pytest.raises(JobScheduleFailedError, match="quota exceeded"):
        await refusing.before_job_schedule(ctx)

    def raises(c: hooks.BeforeJobScheduleContext) -> None:
        raise KeyError("tenant")

    with pytest.raises(JobScheduleFailedError, match="KeyError"):
        await hooks.HookRegistry().on(hooks.BeforeJobSchedule, raises).before_job_schedule(ctx)


async def test_job_recovery_raising_or_wrong_type_means_default() -> None:
    ctx = hooks.JobRecoveryContext(a_job(), "sweeper", "dead")

    def raises(c: hooks.JobRecoveryContext) -> None:
        raise RuntimeError("x")

    registry = hooks.HookRegistry().on(hooks.JobRecovery, raises)
    assert await registry.job_recovery(ctx) == JobRecoveryResult.DEFAULT
    wrong = hooks.HookRegistry().on(hooks.JobRecovery, lambda c: 3)  # type: ignore[arg-type,return-value]
    assert await wrong.job_recovery(ctx) == JobRecoveryResult.DEFAULT
    chosen = hooks.HookRegistry().on(hooks.JobRecovery, lambda c: None)
    chosen.on(hooks.JobRecovery, lambda c: JobRecoveryResult.SKIP)
    assert await chosen.job_recovery(ctx) == JobRecoveryResult.SKIP


def test_merge_keeps_order_and_plugins() -> None:
    class Plug:
        def register(self, registry: hooks.HookRegistry) -> None:
            registry.on(hooks.JobFail, lambda c: None)

    one = hooks.HookRegistry().on(hooks.JobStart, print)
    two = hooks.HookRegistry().add_plugin(Plug())
    one.merge(two)
    assert one.events == {hooks.JobStart, hooks.JobFail}
    assert len(one.plugins) == 1


# --- plugin loading ------------------------------------------------------------------------


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"gw_test_plugins_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        "from graphile_worker_cli import hooks\n"
        "class Counting:\n"
        "    def register(self, registry):\n"
        "        registry.on(hooks.JobStart, lambda ctx: None)\n"
        "        registry.on(hooks.JobComplete, lambda ctx: None)\n"
        "def as_function(registry):\n"
        "    registry.on(hooks.JobFail, lambda ctx: None)\n"
        "class Broken:\n"
        "    def __init__(self):\n"
        "        raise RuntimeError('needs arguments')\n"
        "not_a_plugin = 42\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_plugins_load_from_class_and_function_names(plugin_module: str) -> None:
    registry = hooks.load_plugins([f"{plugin_module}:Counting", f"{plugin_module}:as_function"])
    assert registry.events == {hooks.JobStart, hooks.JobComplete, hooks.JobFail}


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_colon_here", "expected 'package.module:Name'"),
        ("gw_no_such_module_xyz:Plugin", "importing 'gw_no_such_module_xyz' failed"),
        ("{mod}:Missing", "has no 'Missing'"),
        ("{mod}:Broken", "Broken() failed (RuntimeError: needs arguments)"),
        ("{mod}:not_a_plugin", "expected 'package.module:Name'"),
    ],
)
def test_bad_plugin_paths_are_one_line_errors(plugin_module: str, path: str, message: str) -> None:
    with pytest.raises(PluginLoadError) as raised:
        hooks.load_plugin(path.format(mod=plugin_module))
    assert message in raised.value.message
    assert "\n" not in raised.value.message
    assert raised.value.exit_code == 2
