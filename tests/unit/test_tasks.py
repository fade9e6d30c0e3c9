"""Task handlers: each kind runs and yields the right outcome; loading from a directory,
modules and entry points; the errors users see for bad tasks and bad payloads (and
tests/acceptance/test_tasks.py: the same errors from ``gw run``)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from graphile_worker_cli import tasks
from graphile_worker_cli.context import WorkerContext
from graphile_worker_cli.errors import EXIT_USAGE, TaskLoadError
from graphile_worker_cli.tasks import (
    NO_REPLACEMENT,
    BatchTaskHandler,
    TaskFailure,
    TaskHandler,
    TaskRegistry,
    TaskSuccess,
    define_task,
)
from tests.helpers.context import make_context, make_job, run_task
from tests.helpers.paths import FIXTURES, REPO_ROOT

# TaskHandler ------------------------------------------------------------------------


class SendEmail(TaskHandler):
    IDENTIFIER = "send_email"

    to: str
    subject: str = "hi"

    async def run(self, ctx: WorkerContext) -> None:
        SENT.append((self.to, self.subject, ctx.attempts))


SENT: list[tuple[str, str, int]] = []


async def test_task_handler_gets_its_validated_payload() -> None:
    SENT.clear()
    definition = define_task(SendEmail)
    assert definition.identifier == "send_email" and not definition.batch
    ctx = make_context(make_job({"to": "a@example.com"}, identifier="send_email", attempts=2))
    assert await definition(ctx) == TaskSuccess()
    assert SENT == [("a@example.com", "hi", 2)]


async def test_invalid_payload_fails_with_a_clear_message() -> None:
    outcome = await run_task(SendEmail, {"subject": "no recipient"}, identifier="send_email")
    assert isinstance(outcome, TaskFailure)
    assert outcome.message == 'invalid payload for task "send_email": field "to": Field required'
    assert outcome.replacement_payload is NO_REPLACEMENT

    outcome = await run_task(SendEmail, [1, 2], identifier="send_email")
    assert outcome.message.startswith('invalid payload for task "send_email": Input should be')


class Failing(TaskHandler):
    IDENTIFIER = "failing"
    mode: str

    async def run(self, ctx: WorkerContext) -> object:
        if self.mode == "raise":
            raise ValueError("smtp said no")
        if self.mode == "empty":
            raise RuntimeError()
        if self.mode == "return-exception":
            return ConnectionError("host down")
        if self.mode == "return-failure":
            return TaskFailure("quota exceeded")
        if self.mode == "false":
            return False
        if self.mode == "true":
            return True
        return {"anything": "else"}  # other values are a success


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("raise", TaskFailure("ValueError: smtp said no")),
        ("empty", TaskFailure("RuntimeError")),
        ("return-exception", TaskFailure("ConnectionError: host down")),
        ("return-failure", TaskFailure("quota exceeded")),
        ("false", TaskSuccess()),  # as in the reference
        ("true", TaskSuccess()),
        ("value", TaskSuccess()),
    ],
)
async def test_results_map_to_outcomes(mode: str, expected: object) -> None:
    assert await run_task(Failing, {"mode": mode}, identifier="failing") == expected


async def test_a_raised_exception_is_kept_for_logs() -> None:
    outcome = await run_task(Failing, {"mode": "raise"}, identifier="failing")
    assert isinstance(outcome, TaskFailure) and isinstance(outcome.error, ValueError)


async def test_cancellation_propagates_so_the_worker_can_abort() -> None:
    started = asyncio.Event()

    async def slow(payload: Any, ctx: WorkerContext) -> None:
        started.set()
        await asyncio.Event().wait()

    definition = define_task(slow)
    running = asyncio.create_task(definition(make_context()))
    await started.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running


# Functions --------------------------------------------------------------------------


@dataclasses.dataclass
class Resize:
    width: int
    height: int = 0


async def test_async_function_with_raw_json_payload() -> None:
    seen: list[Any] = []

    async def raw(payload, ctx):  # type: ignore[no-untyped-def]  # unannotated on purpose
        seen.append((payload, ctx.job_id))

    assert await run_task(raw, {"a": [1, "2"]}) == TaskSuccess()
    assert seen == [({"a": [1, "2"]}, 42)]


async def test_function_with_a_dataclass_payload_is_validated() -> None:
    seen: list[Resize] = []

    async def resize(payload: Resize, ctx: WorkerContext) -> None:
        seen.append(payload)

    assert await run_task(resize, {"width": "640"}) == TaskSuccess()
    assert seen == [Resize(640, 0)]
    outcome = await run_task(resize, {"width": "wide"}, identifier="resize")
    assert outcome == TaskFailure(
        'invalid payload for task "resize": field "width": '
        "Input should be a valid integer, unable to parse string as an integer"
    )


async def test_function_taking_only_the_payload() -> None:
    seen: list[Any] = []

    def only_payload(payload: dict[str, int]) -> None:
        seen.append(payload)

    assert await run_task(only_payload, {"n": 1}) == TaskSuccess()
    assert seen == [{"n": 1}]


async def test_sync_function_runs_in_another_thread_and_the_loop_stays_responsive() -> None:
    release = threading.Event()
    ran_in: list[int] = []

    def blocking(payload: Any, ctx: WorkerContext) -> None:
        ran_in.append(threading.get_ident())
        # Blocks until the loop itself sets the event: only possible if the loop runs on.
        assert release.wait(timeout=30)

    running = asyncio.create_task(define_task(blocking, "blocking")(make_context()))
    while not ran_in:
        await asyncio.sleep(0.01)
    assert not running.done()
    release.set()  # done from the event loop while the handler is still blocked
    assert await running == TaskSuccess()
    assert ran_in[0] != threading.get_ident()


async def test_sync_task_handler_run_also_uses_a_thread() -> None:
    threads: list[int] = []

    class SyncHandler(TaskHandler):
        IDENTIFIER = "sync_handler"

        def run(self, ctx: WorkerContext) -> None:  # type: ignore[override]
            threads.append(threading.get_ident())

    assert await run_task(SyncHandler, {}) == TaskSuccess()
    assert threads and threads[0] != threading.get_ident()


async def test_sync_function_exception_becomes_a_failure() -> None:
    def broken(payload: Any) -> None:
        raise KeyError("missing")

    assert await run_task(broken, {}) == TaskFailure("KeyError: 'missing'")


async def test_decorated_function_keeps_working_as_a_function() -> None:
    @tasks.task("named")
    async def decorated(payload: Any, ctx: WorkerContext) -> None:
        return None

    await decorated({}, make_context())  # still a plain function
    assert define_task(decorated).identifier == "named"
    assert define_task(decorated, "override").identifier == "override"


def test_bad_task_definitions_are_load_errors() -> None:
    def three(a: Any, b: Any, c: Any) -> None: ...

    with pytest.raises(TaskLoadError, match=r"takes \(payload\) or \(payload, ctx\)"):
        define_task(three, "three")

    class NoIdentifier(TaskHandler):
        async def run(self, ctx: WorkerContext) -> None: ...

    with pytest.raises(TaskLoadError, match="NoIdentifier has no IDENTIFIER"):
        define_task(NoIdentifier)
    with pytest.raises(TaskLoadError, match="is not a task"):
        define_task(int)
    with pytest.raises(TaskLoadError) as raised:
        define_task(NoIdentifier)
    assert raised.value.exit_code == EXIT_USAGE


# Batches ----------------------------------------------------------------------------


class IndexRecord(BatchTaskHandler):
    IDENTIFIER = "index_record"
    id: int

    @classmethod
    async def run_batch(cls, items: list[IndexRecord], ctx: WorkerContext) -> Sequence[object]:
        results: list[object] = []
        for item in items:
            if item.id > 0:
                results.append(None)
            elif item.id == 0:
                results.append("id zero is reserved")
            else:
                results.append(ValueError(f"negative id {item.id}"))
        return results


async def test_batch_all_ok_is_a_success() -> None:
    definition = define_task(IndexRecord)
    assert definition.batch
    assert await run_task(IndexRecord, [{"id": 1}, {"id": 2}]) == TaskSuccess()


async def test_batch_partial_failure_retries_only_the_failed_items_original_json() -> None:
    payload = [
        {"id": 1},
        {"id": 0, "extra": "kept as is"},
        {"id": 2},
        {"id": -5, "note": [1, 2]},
    ]
    outcome = await run_task(IndexRecord, payload, identifier="index_record")
    assert outcome == TaskFailure(
        "Batch failures:\nid zero is reserved\nnegative id -5",
        replacement_payload=[{"id": 0, "extra": "kept as is"}, {"id": -5, "note": [1, 2]}],
    )


async def test_batch_item_that_does_not_validate_fails_alone() -> None:
    outcome = await run_task(IndexRecord, [{"id": 1}, {"id": "x"}], identifier="index_record")
    assert isinstance(outcome, TaskFailure)
    assert outcome.replacement_payload == [{"id": "x"}]
    assert outcome.message.startswith('Batch failures:\ninvalid payload for task "index_record"')


async def test_batch_wrong_result_count_fails_the_whole_job() -> None:
    class Short(BatchTaskHandler):
        IDENTIFIER = "short"
        id: int

        @classmethod
        async def run_batch(cls, items: list[Short], ctx: WorkerContext) -> Sequence[object]:
            return [None]

    outcome = await run_task(Short, [{"id": 1}, {"id": 2}], identifier="short")
    assert outcome == TaskFailure(
        'batch task "short" returned 1 result for 2 items; '
        "expected a list with one result per item, in order"
    )
    assert outcome.replacement_payload is NO_REPLACEMENT


async def test_batch_that_raises_fails_the_whole_job_without_replacement() -> None:
    class Exploding(BatchTaskHandler):
        IDENTIFIER = "exploding"
        id: int

        @classmethod
        async def run_batch(cls, items: list[Exploding], ctx: WorkerContext) -> Sequence[object]:
            raise OSError("disk full")

    assert await run_task(Exploding, [{"id": 1}]) == TaskFailure("OSError: disk full")


async def test_batch_handler_given_a_single_object_treats_it_as_one_item() -> None:
    assert await run_task(IndexRecord, {"id": 3}) == TaskSuccess()
    outcome = await run_task(IndexRecord, {"id": -1})
    assert outcome == TaskFailure("ValueError: negative id -1")  # payload kept as is
    assert await run_task(IndexRecord, []) == TaskSuccess()


async def test_batch_function() -> None:
    @tasks.task("index_fn", batch=True)
    def index_fn(items: list[Resize]) -> list[object]:
        return [None if item.width else TaskFailure("no width") for item in items]

    outcome = await run_task(index_fn, [{"width": 1}, {"width": 0}], identifier="index_fn")
    assert outcome == TaskFailure("Batch failures:\nno width", replacement_payload=[{"width": 0}])


# Registry ---------------------------------------------------------------------------


def test_registry_duplicate_names_both_sources() -> None:
    registry = TaskRegistry()
    registry.add(define_task(SendEmail, source="tasks/send_email.py"))
    with pytest.raises(TaskLoadError) as raised:
        registry.add(define_task(SendEmail, source="module myapp.tasks"))
    assert str(raised.value) == (
        'task "send_email" is defined twice: in tasks/send_email.py and in module '
        "myapp.tasks; each task identifier must be defined once"
    )
    assert "send_email" in registry and len(registry) == 1
    assert registry["send_email"].source == "tasks/send_email.py"
    with pytest.raises(KeyError, match="unknown task"):
        registry["nope"]


# Loading: directory -----------------------------------------------------------------


def test_load_directory_nested_identifiers_and_skipped_files() -> None:
    registry = tasks.load_tasks_directory(FIXTURES / "tasks_basic")
    assert registry.identifiers() == ["a/b", "emails/send-digest", "send_email"]
    assert registry["send_email"].source.endswith("tasks_basic/send_email.py")
    assert registry["a/b"].source.endswith("tasks_basic/a/b.py")


async def test_directory_tasks_run_and_share_code_by_relative_import() -> None:
    registry = tasks.load_tasks_directory(FIXTURES / "tasks_basic")
    handler = registry["send_email"].handler
    shared = sys.modules[handler.__module__.rsplit(".", 1)[0] + "._shared"]
    shared.SENT.clear()
    ctx = make_context(make_job({"to": "x@example.com"}, identifier="send_email"))
    assert await registry["send_email"](ctx) == TaskSuccess()
    assert shared.SENT == ["x@example.com"]
    digest = make_context(make_job({"count": 3}, identifier="emails/send-digest"))
    assert await registry["emails/send-digest"](digest) == TaskSuccess()


def test_same_file_names_in_two_directories_do_not_clash() -> None:
    first = tasks.load_tasks_directory(FIXTURES / "tasks_basic")["send_email"].handler
    second = tasks.load_tasks_directory(FIXTURES / "tasks_dup")["send_email"].handler
    assert first is not second
    assert first.__module__ != second.__module__


def test_import_error_names_the_file() -> None:
    with pytest.raises(TaskLoadError) as raised:
        tasks.load_tasks_directory(FIXTURES / "tasks_broken")
    message = str(raised.value)
    assert message.startswith("could not import task file ")
    assert "tasks_broken/bad.py: ModuleNotFoundError: No module named " in message
    assert "\n" not in message


def test_syntax_error_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "oops.py").write_text("def task(payload:\n")
    with pytest.raises(TaskLoadError, match=r"could not import task file .*oops\.py: SyntaxError"):
        tasks.load_tasks_directory(tmp_path)


def test_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_tasks"
    with pytest.raises(TaskLoadError) as raised:
        tasks.load_tasks_directory(missing)
    assert str(raised.value) == (
        f"tasks directory {missing} does not exist; expected a directory of .py task files"
    )
    (tmp_path / "file.py").write_text("")
    with pytest.raises(TaskLoadError, match="is not a directory"):
        tasks.load_tasks_directory(tmp_path / "file.py")


def test_file_without_a_task_is_named(tmp_path: Path) -> None:
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(TaskLoadError, match=r"empty\.py defines no task; expected a function"):
        tasks.load_tasks_directory(tmp_path)


def test_file_with_two_handlers_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "two.py").write_text(
        "from graphile_worker_cli.tasks import TaskHandler\n"
        "class A(TaskHandler):\n    IDENTIFIER = 'two'\n"
        "class B(TaskHandler):\n    IDENTIFIER = 'two'\n"
    )
    with pytest.raises(TaskLoadError, match=r"two\.py defines 2 tasks \(A, B\)"):
        tasks.load_tasks_directory(tmp_path)


def test_identifier_must_match_the_file_path(tmp_path: Path) -> None:
    (tmp_path / "mail.py").write_text(
        "from graphile_worker_cli.tasks import TaskHandler\n"
        "class SendEmail(TaskHandler):\n    IDENTIFIER = 'send_email'\n"
    )
    with pytest.raises(TaskLoadError) as raised:
        tasks.load_tasks_directory(tmp_path)
    assert 'mail.py is task "mail" but SendEmail declares identifier "send_email"' in str(
        raised.value
    )


def test_task_file_may_use_the_decorator_and_a_task_name(tmp_path: Path) -> None:
    # A module-level name `task` that is the decorator itself is not the task.
    (tmp_path / "deco.py").write_text(
        "from graphile_worker_cli.tasks import task\n"
        "@task\nasync def handle(payload, ctx):\n    return None\n"
    )
    assert tasks.load_tasks_directory(tmp_path).identifiers() == ["deco"]


# Loading: modules and entry points --------------------------------------------------


@pytest.fixture
def modules_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES / "tasks_modules"))


@pytest.mark.usefixtures("modules_on_path")
def test_load_modules_finds_handlers_and_decorated_functions() -> None:
    registry = tasks.load_task_modules(["gw_fixture_tasks_module", "gw_fixture_tasks_listed"])
    assert registry.identifiers() == [
        "cleanup",
        "images/resize",
        "index",
        "listed/one",
        "listed/two",
    ]
    assert registry["index"].batch
    assert registry["cleanup"].source == "module gw_fixture_tasks_module (cleanup_everything)"


def test_module_that_cannot_be_imported_is_named() -> None:
    with pytest.raises(TaskLoadError) as raised:
        tasks.load_task_modules(["gw_no_such_module_anywhere"])
    assert str(raised.value) == (
        "could not import tasks module 'gw_no_such_module_anywhere': "
        "ModuleNotFoundError: No module named 'gw_no_such_module_anywhere'"
    )


def test_module_without_tasks_is_an_error() -> None:
    with pytest.raises(TaskLoadError, match="module json defines no tasks"):
        tasks.load_task_modules(["json"])


@pytest.mark.usefixtures("modules_on_path")
def test_duplicate_across_directory_and_module_names_both() -> None:
    with pytest.raises(TaskLoadError) as raised:
        tasks.load_tasks(
            FIXTURES / "tasks_basic", ["gw_fixture_tasks_dup_module"], entry_points=False
        )
    message = str(raised.value)
    assert message.startswith('task "send_email" is defined twice: in ')
    assert "tasks_basic/send_email.py and in module gw_fixture_tasks_dup_module" in message


def write_distribution(root: Path, name: str, entry_points: str, modules: dict[str, str]) -> None:
    """A minimal installed distribution: a dist-info with entry_points.txt, plus modules."""
    info = root / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)
    for module, source in modules.items():
        (root / f"{module}.py").write_text(source)


ENTRY_POINT_MODULE = """
from graphile_worker_cli.tasks import TaskHandler, task

class Charge(TaskHandler):
    IDENTIFIER = "billing/charge"
    amount: int

    async def run(self, ctx):
        return None

async def refund(payload, ctx):
    return None

@task("billing/invoice")
def invoice(payload):
    return None
"""

ENTRY_POINT_TASKS_MODULE = """
from graphile_worker_cli.tasks import task

@task("billing/report")
async def report(payload, ctx):
    return None
"""


def test_load_entry_points_class_function_and_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_distribution(
        tmp_path,
        "gw_test_billing",
        "[graphile_worker.tasks]\n"
        "charge = gw_ep_billing:Charge\n"
        "billing/refund = gw_ep_billing:refund\n"
        "anything = gw_ep_billing:invoice\n"
        "reports = gw_ep_billing_reports\n"
        "[console_scripts]\nunrelated = gw_ep_billing:refund\n",
        {"gw_ep_billing": ENTRY_POINT_MODULE, "gw_ep_billing_reports": ENTRY_POINT_TASKS_MODULE},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = tasks.load_entry_point_tasks()
    assert registry.identifiers() == [
        "billing/charge",
        "billing/invoice",
        "billing/refund",
        "billing/report",
    ]
    assert registry["billing/refund"].source == (
        "entry point billing/refund = gw_ep_billing:refund (gw_test_billing)"
    )


def test_broken_entry_point_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_distribution(
        tmp_path,
        "gw_test_broken",
        "[graphile_worker.tasks]\nbroken = gw_ep_missing_module:task\n",
        {},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TaskLoadError) as raised:
        tasks.load_entry_point_tasks()
    assert str(raised.value).startswith(
        "could not load entry point broken = gw_ep_missing_module:task (gw_test_broken): "
        "ModuleNotFoundError"
    )


def test_the_entry_point_prescan_says_no_only_when_no_distribution_names_the_group(
    tmp_path: Path,
) -> None:
    from graphile_worker_cli.tasks.loading import may_declare_entry_points

    write_distribution(tmp_path / "plain", "gw_test_plain", "[console_scripts]\nx = m:f\n", {})
    write_distribution(
        tmp_path / "tasks", "gw_test_tasks", "[graphile_worker.tasks]\nx = m:f\n", {}
    )
    group = "graphile_worker.tasks"
    assert not may_declare_entry_points(group, [str(tmp_path / "plain"), str(tmp_path / "no")])
    assert may_declare_entry_points(group, [str(tmp_path / "plain"), str(tmp_path / "tasks")])
    # What it cannot read as folders, importlib.metadata decides.
    archive = tmp_path / "packages.zip"
    archive.write_bytes(b"PK\x05\x06" + bytes(18))
    assert may_declare_entry_points(group, [str(archive)])
    assert may_declare_entry_points(group, [str(tmp_path / "old.egg")])


def test_entry_point_duplicate_of_a_module_task_names_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, modules_on_path: None
) -> None:
    write_distribution(
        tmp_path,
        "gw_test_dup",
        "[graphile_worker.tasks]\ncleanup = gw_ep_dup:cleanup\n",
        {"gw_ep_dup": "async def cleanup(payload, ctx):\n    return None\n"},
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TaskLoadError) as raised:
        tasks.load_tasks(None, ["gw_fixture_tasks_module"])
    assert str(raised.value).startswith(
        'task "cleanup" is defined twice: in module gw_fixture_tasks_module '
        "(cleanup_everything) and in entry point cleanup = gw_ep_dup:cleanup (gw_test_dup)"
    )


# tasks_example ----------------------------------------------------------------------


def test_tasks_example_loads_cleanly() -> None:
    registry = tasks.load_tasks_directory(REPO_ROOT / "tasks_example")
    assert set(registry.identifiers()) >= {
        "send_email",
        "index_records",
        "resize_image",
        "hello",
        "flaky_webhook",
    }


async def test_tasks_example_flaky_task_fails_then_succeeds() -> None:
    registry = tasks.load_tasks_directory(REPO_ROOT / "tasks_example")
    flaky = registry["flaky_webhook"]
    payload = {"url": "https://example.com/hook", "succeed_on_attempt": 3}
    outcomes = [
        await flaky(make_context(make_job(payload, identifier="flaky_webhook", attempts=n)))
        for n in (1, 2, 3)
    ]
    assert [type(o) for o in outcomes] == [TaskFailure, TaskFailure, TaskSuccess]


@pytest.mark.parametrize(
    ("identifier", "payload", "succeeds"),
    [
        ("send_email", {"to": "ada@example.com", "subject": "Welcome"}, True),
        ("send_email", {"to": "not an address", "subject": "Welcome"}, False),
        ("index_records", [{"id": 1, "title": "Intro"}, {"id": 2, "title": ""}], False),
        ("index_records", [{"id": 1, "title": "Intro"}], True),
        ("resize_image", {"path": "uploads/cat.png", "width": "640"}, True),
        ("hello", {"name": "Ada"}, True),
    ],
)
async def test_tasks_example_tasks_run(identifier: str, payload: Any, succeeds: bool) -> None:
    registry = tasks.load_tasks_directory(REPO_ROOT / "tasks_example")
    outcome = await registry[identifier](make_context(make_job(payload, identifier=identifier)))
    assert isinstance(outcome, TaskSuccess) is succeeds, outcome
    if identifier == "index_records" and not succeeds:
        assert outcome == TaskFailure(
            "Batch failures:\nrecord 2 has an empty title",
            replacement_payload=[{"id": 2, "title": ""}],
        )


async def test_run_task_from_worker_ctx_runs_a_handler_once() -> None:
    ctx = make_context(make_job({"mode": "raise"}, identifier="failing"))
    assert await tasks.run_task_from_worker_ctx(Failing, ctx) == TaskFailure(
        "ValueError: smtp said no"
    )


def test_handler_class_without_run_is_a_load_error() -> None:
    class NoRun(TaskHandler):
        IDENTIFIER = "no_run"

    class NoRunBatch(BatchTaskHandler):
        IDENTIFIER = "no_run_batch"

    with pytest.raises(TaskLoadError, match="NoRun does not define run"):
        define_task(NoRun)
    with pytest.raises(TaskLoadError, match="NoRunBatch does not define run_batch"):
        define_task(NoRunBatch)


async def test_exception_with_a_broken_str_still_fails_cleanly() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    async def raises_weird(payload: Any) -> None:
        raise Weird()

    assert await run_task(raises_weird, {}) == TaskFailure("Weird: <message unavailable>")


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (None, 'batch task "whole" returned NoneType; expected a list with one result per item'),
        ("oops", 'batch task "whole" returned str; expected a list with one result per item'),
        (TaskFailure("index offline"), "index offline"),
        (TimeoutError("index slow"), "TimeoutError: index slow"),
    ],
)
async def test_batch_returning_no_list_fails_the_whole_job(returned: object, message: str) -> None:
    @tasks.task("whole", batch=True)
    async def whole(items: list[Any], ctx: WorkerContext) -> object:
        return returned

    outcome = await run_task(whole, [1, 2], identifier="whole")
    assert isinstance(outcome, TaskFailure) and outcome.message.startswith(message)
    assert outcome.replacement_payload is NO_REPLACEMENT
