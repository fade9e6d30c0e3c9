"""The library runner without a database: where its settings come from, what it loads, and
what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

import graphile_worker_cli
from graphile_worker_cli import config, runner
from graphile_worker_cli.errors import BadInputError, ConfigError, TaskLoadError
from graphile_worker_cli.worker import processes

pytestmark = pytest.mark.usefixtures("clean_environment")


async def greet(payload: object) -> None:
    del payload


def test_root_exports_the_runner() -> None:
    assert graphile_worker_cli.Runner is runner.Runner
    assert graphile_worker_cli.run is runner.run


def test_settings_come_from_toml_then_environment_then_keywords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "worker.toml").write_text(
        'concurrency = 3\npoll_interval = "5s"\nschema = "from_toml"\n'
    )
    monkeypatch.setenv("GW_POLL_INTERVAL", "7s")
    monkeypatch.setenv("GW_MAX_PG_CONN", "4")
    made = runner.Runner(concurrency=6, shutdown_grace_period="1s")
    settings = made.settings
    assert (settings.concurrency, settings.poll_interval) == (6, 7.0)
    assert (settings.max_pg_conn, settings.schema_name) == (4, "from_toml")
    assert settings.shutdown_grace_period == 1.0
    assert settings.sources["concurrency"] == config.SOURCE_CLI
    assert settings.sources["poll_interval"] == config.SOURCE_ENV
    assert settings.config_file == Path("worker.toml")


def test_an_explicit_config_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "other.toml").write_text("concurrency = 2\n")
    assert runner.Runner(config_file="other.toml").settings.concurrency == 2


def test_given_settings_are_used_as_they_are() -> None:
    settings = config.Settings(concurrency=9)
    assert runner.Runner(settings).settings is settings


def test_settings_and_overrides_together_are_refused() -> None:
    with pytest.raises(TypeError, match="not both"):
        runner.Runner(config.Settings(), concurrency=2)


def test_a_bad_keyword_value_names_its_key() -> None:
    with pytest.raises(ConfigError, match="--concurrency: expected an integer >= 1"):
        runner.Runner(concurrency=0)


def test_an_unknown_keyword_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown settings key 'concurency'"):
        runner.Runner(concurency=2)


def test_load_without_any_task_is_the_gw_run_error() -> None:
    with pytest.raises(BadInputError) as caught:
        runner.Runner().load()
    assert caught.value.message == runner.NO_TASKS
    assert caught.value.exit_code == 2


def test_load_reads_the_default_tasks_directory_and_crontab(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "hello.py").write_text("async def task(payload, ctx):\n    pass\n")
    (tmp_path / "crontab").write_text("0 4 * * * hello\n")
    made = runner.Runner(task_handlers=[greet])
    made.load()
    assert made.registry is not None
    assert sorted(made.registry.identifiers()) == ["greet", "hello"]
    assert [item.task_identifier for item in made.crontabs] == ["hello"]


def test_a_task_defined_twice_is_a_load_error(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "greet.py").write_text("async def task(payload, ctx):\n    pass\n")
    with pytest.raises(TaskLoadError, match='"greet" is defined twice'):
        runner.Runner(task_handlers=[greet]).load()


def test_a_missing_plugin_is_a_load_error() -> None:
    with pytest.raises(BadInputError) as caught:
        runner.Runner(task_handlers=[greet], plugins=["no_such_module_for_gw:Plugin"]).load()
    assert caught.value.exit_code == 2


def test_a_supervised_child_takes_the_supervisors_url_and_does_not_migrate(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(processes.CHILD_ENV, "2")
    monkeypatch.setenv(processes.CHILD_URL_ENV, "postgresql://supervisor/db")
    made = runner.Runner(database_url="postgresql://own/db", processes=3)
    assert made.settings.database_url == "postgresql://supervisor/db"
    assert made.settings.migrate is False
    assert not made.supervises


def test_children_of_a_library_supervisor_get_the_settings_as_variables() -> None:
    made = runner.Runner(
        database_url="postgresql://u:secret@h/db", processes=2, concurrency=4,
        direct_database_url="postgresql://u:direct@h:5433/db", crontab="jobs.crontab",
        forbidden_flags=["slow"], tasks_modules=["app.tasks"], once=True,
    )
    assert made.supervises
    env = made._child_env()
    assert env["GW_DATABASE_URL"] == "postgresql://u:secret@h/db"
    assert env["GW_CONCURRENCY"] == "4"
    assert env["GW_FORBIDDEN_FLAGS"] == '["slow"]'
    assert env["GW_TASKS_MODULES"] == '["app.tasks"]'
    assert env["GW_DIRECT_DATABASE_URL"] == "postgresql://u:direct@h:5433/db"
    assert env["GW_CRONTAB"] == "jobs.crontab"
    assert env["GW_SHUTDOWN_GRACE_PERIOD"] == "30s"  # with its unit: a bare number is refused
    assert "GW_METRICS_PORT" not in env  # unset settings stay unset
    assert made._child_argv() == ["run", "--once"]
    # read back as a child would, they are the same settings
    child = config.read_environment(env)
    assert {key: child[key] for key in child} == {
        key: value for key, value in made.settings.values().items()
        if value is not None
    }


def test_gw_run_children_run_gw_runs_own_arguments() -> None:
    made = runner.Runner(processes=2, child_args=["run", "-j", "3"])
    assert made._child_argv() == ["run", "-j", "3"]
    assert made._child_env() == {}


async def test_wait_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        await runner.Runner().wait()


def test_task_handlers_reach_children_by_module_and_name() -> None:
    assert runner.child_task_path(greet, 2) == f"{__name__}:greet"

    def local(payload: object) -> None:
        del payload

    with pytest.raises(BadInputError, match="it is defined inside a function"):
        runner.child_task_path(local, 2)
    with pytest.raises(BadInputError, match="it is defined inside a function"):
        runner.child_task_path(lambda payload: None, 3)
    def impostor(payload: object) -> None:
        del payload

    impostor.__qualname__ = "greet"  # the name imports another object
    with pytest.raises(BadInputError, match=r"test_runner:greet does not name it"):
        runner.child_task_path(impostor, 2)
    with pytest.raises(BadInputError, match="has no module-level name"):
        runner.child_task_path(object(), 2)
