"""Executable task files: a file in the tasks directory that is executable and not a
``.py`` file runs as a process of its own, with the reference's contract.

- The process gets the worker's environment plus ``GRAPHILE_WORKER_PAYLOAD_FORMAT=json``,
  ``GRAPHILE_WORKER_TASK_IDENTIFIER``, ``GRAPHILE_WORKER_JOB_ID``, ``GRAPHILE_WORKER_JOB_KEY``
  (only when the job has a key), ``GRAPHILE_WORKER_JOB_ATTEMPTS``,
  ``GRAPHILE_WORKER_JOB_MAX_ATTEMPTS``, ``GRAPHILE_WORKER_JOB_PRIORITY`` and
  ``GRAPHILE_WORKER_JOB_RUN_AT`` (``2030-01-01T08:00:00.000Z``); it runs in the worker's
  working directory, without a shell and without arguments.
- Its standard input is ``{"payload": <the payload>}`` as ``JSON.stringify`` writes it.
- Each line it writes to stdout is logged at info, each line to stderr at error.
- Exit code 0 is a success. Anything else fails the job: ``Process exited with code N``
  followed by the last lines it wrote to stderr. (The reference's task rejects with those
  words, but its worker stores a generic "An error occurred" for them.)
- It is stopped (``stop_process``: SIGTERM, SIGKILL after a grace) when the job is aborted
  and after ``TIMEOUT_SECONDS`` (4 hours, as in the reference); it is killed at once when
  the job is cancelled (at shutdown, the end of the abort window). It runs in a process group of its
  own, so whatever it started is stopped with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC
from pathlib import Path

from graphile_worker_cli import js_json
from graphile_worker_cli.context import WorkerContext
from graphile_worker_cli.job import Job
from graphile_worker_cli.task_outcome import TaskFailure, TaskOutcome, TaskSuccess
from graphile_worker_cli.tasks.definition import TaskDefinition

TIMEOUT_SECONDS = 4 * 60 * 60.0
"""How long a task process may run (the reference's limit)."""
STOP_GRACE_SECONDS = 5.0
"""Between SIGTERM and SIGKILL when a task process is stopped."""
STDERR_TAIL_LINES = 20
STDERR_TAIL_CHARS = 2000
"""How much of the end of stderr goes into ``last_error``."""


def is_executable_file(path: Path) -> bool:
    """A regular file (symlinks followed) whose owner may execute it: the reference's test
    (the owner's execute bit, not whether this process may)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and bool(mode & stat.S_IXUSR)


def executable_task(path: Path, identifier: str, *, source: str | None = None) -> TaskDefinition:
    """The task that runs ``path`` for each job of ``identifier``."""
    program = str(path.resolve())

    async def runner(ctx: WorkerContext) -> TaskOutcome:
        return await run_executable(program, identifier, ctx)

    return TaskDefinition(
        identifier, runner, source=source or str(path), handler=path, batch=False
    )


def task_environment(identifier: str, ctx: WorkerContext) -> dict[str, str]:
    """The worker's environment plus the job's ``GRAPHILE_WORKER_*`` variables."""
    job = ctx.job
    env = dict(os.environ)
    env.update(
        GRAPHILE_WORKER_PAYLOAD_FORMAT="json",
        GRAPHILE_WORKER_TASK_IDENTIFIER=identifier,
        GRAPHILE_WORKER_JOB_ID=str(job.id),
        GRAPHILE_WORKER_JOB_ATTEMPTS=str(job.attempts),
        GRAPHILE_WORKER_JOB_MAX_ATTEMPTS=str(job.max_attempts),
        GRAPHILE_WORKER_JOB_PRIORITY=str(job.priority),
        GRAPHILE_WORKER_JOB_RUN_AT=_iso_millis(job),
    )
    if job.key is None:
        env.pop("GRAPHILE_WORKER_JOB_KEY", None)  # not set, not even from our environment
    else:
        env["GRAPHILE_WORKER_JOB_KEY"] = job.key
    return env


def _iso_millis(job: Job) -> str:
    run_at = job.run_at.astimezone(UTC)
    return run_at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{run_at.microsecond // 1000:03d}Z"


async def run_executable(
    program: str, identifier: str, ctx: WorkerContext, *, timeout: float = TIMEOUT_SECONDS
) -> TaskOutcome:
    """Run ``program`` for ``ctx``'s job and read its exit code as the outcome."""
    stdin = js_json.stringify({"payload": ctx.job.payload}, non_finite_as_null=True)
    try:
        process = await asyncio.create_subprocess_exec(
            program, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env=task_environment(identifier, ctx),
            start_new_session=True,
        )
    except OSError as error:
        return TaskFailure(f"could not start {program}: {error}", error=error)
    tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
    logger = ctx.logger
    readers = [
        asyncio.ensure_future(_forward(process.stdout, logger.info, None)),
        asyncio.ensure_future(_forward(process.stderr, logger.error, tail)),
        asyncio.ensure_future(_feed(process, stdin.encode())),
    ]
    finished = asyncio.ensure_future(_finished(process, readers))
    aborted = asyncio.ensure_future(ctx.abort_signal.wait())
    try:
        done, _ = await asyncio.wait(
            {finished, aborted}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if finished in done:
            return _outcome(process.returncode, tail)
        await _stop(process, [finished, *readers])
        if aborted in done:
            return TaskFailure(f"Process stopped: the job was aborted ({aborted.result()})")
        return TaskFailure(f"Process stopped after {timeout:g}s (the time limit)")
    except asyncio.CancelledError:
        # Cancelled: the abort window (if any) is over, so no more grace.
        await _kill(process, [finished, *readers])
        raise
    finally:
        aborted.cancel()


def _outcome(code: int | None, tail: deque[str]) -> TaskOutcome:
    if code == 0:
        return TaskSuccess()
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        message = f"Process killed by {name}"
    else:
        message = f"Process exited with code {code}"
    text = "\n".join(tail)[-STDERR_TAIL_CHARS:]
    return TaskFailure(f"{message}:\n{text}" if text else message)


async def _finished(
    process: asyncio.subprocess.Process, readers: Sequence[asyncio.Future[None]]
) -> None:
    """The process exited and its output is read to the end (the reference's "close")."""
    await process.wait()
    await asyncio.gather(*readers)


async def _feed(process: asyncio.subprocess.Process, data: bytes) -> None:
    stdin = process.stdin
    if stdin is None:
        return
    # A program that exits without reading its input is fine.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.write(data)
        await stdin.drain()
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stdin.close()
        await stdin.wait_closed()


async def _forward(
    stream: asyncio.StreamReader | None, log: Callable[..., None], tail: deque[str] | None
) -> None:
    if stream is None:
        return
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line longer than the stream's limit: take what is there
            raw = await stream.read(2**16)
        if not raw:
            return
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        log("%s", line)
        if tail is not None:
            tail.append(line)


async def _stop(
    process: asyncio.subprocess.Process, waiting: Sequence[asyncio.Future[None]]
) -> None:
    """``stop_process``, carried to its end even if the caller is cancelled meanwhile;
    then the readers and waiters of the process are dropped."""
    stopping = asyncio.ensure_future(stop_process(process))
    try:
        await asyncio.shield(stopping)
    except asyncio.CancelledError:
        stopping.cancel()  # the caller kills what is left
        raise
    await _drop(waiting)


async def _kill(
    process: asyncio.subprocess.Process, waiting: Sequence[asyncio.Future[None]]
) -> None:
    """SIGKILL the task's process group at once and reap it, even if cancelled again."""
    _signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.shield(process.wait())
    await _drop(waiting)


async def _drop(waiting: Sequence[asyncio.Future[None]]) -> None:
    for future in waiting:
        future.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)


async def stop_process(
    process: asyncio.subprocess.Process, grace: float | None = None
) -> None:
    """Stop a task's process and everything it started: SIGTERM to its process group,
    SIGKILL to what is left after ``grace`` seconds (default ``STOP_GRACE_SECONDS``)."""
    grace = STOP_GRACE_SECONDS if grace is None else grace
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), grace)
    # Children that outlived their parent, or a parent that ignored SIGTERM.
    _signal_group(process.pid, signal.SIGKILL)
    await process.wait()


def _signal_group(group: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, sig)
