"""``gw run --processes N``: a supervisor that runs N worker processes.

Each child is a full ``gw run`` (its own pool, its own ``locked_by``), started in its own
process group so a terminal's Ctrl-C reaches only the supervisor, which forwards every
SIGINT/SIGTERM/SIGHUP to each child once — a second signal still means "hurry". A child that
crashes is restarted with capped, jittered backoff; one that exits 0 (``--once``, or a stop),
2 (bad input) or 57 (schema too new) is not. When every child has stopped, the supervisor
exits with the worst code among them (57 if any child got 57).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from graphile_worker_cli.errors import EXIT_SCHEMA_TOO_NEW, EXIT_USAGE, ConfigError
from graphile_worker_cli.worker import backoff
from graphile_worker_cli.worker.shutdown import OS_SIGNALS

log = logging.getLogger("gw.supervisor")

CHILD_ENV = "GW_SUPERVISED_CHILD"
"""Set in a child's environment (to its slot number): run one worker, do not migrate."""
CHILD_URL_ENV = "GW_SUPERVISOR_DATABASE_URL"
"""The database URL the supervisor resolved (an embedded server's included)."""
CHILD_COMMAND_ENV = "GW_SUPERVISOR_CHILD_COMMAND"
"""A JSON array: the command a child runs, before gw's arguments. Unset: this Python running
``graphile_worker_cli``. ``manage.py gw`` sets it to itself, so each child sets Django up
before it loads the project's tasks."""

RESTART_BASE = 0.5
RESTART_CAP = 30.0
HEALTHY_AFTER = 60.0
"""A child that ran this long before crashing restarts with the shortest delay again."""
_NO_RESTART = (0, EXIT_USAGE, EXIT_SCHEMA_TOO_NEW)
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """In the child, before exec: its own process group (a terminal's Ctrl-C reaches only
    the supervisor), and SIGTERM if the supervisor dies without forwarding anything."""
    os.setpgid(0, 0)
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)


@dataclass
class _Slot:
    index: int
    process: asyncio.subprocess.Process | None = None
    started: float = 0.0
    failures: int = 0
    last_code: int = 0
    waiter: asyncio.Task[int] | None = field(default=None, repr=False)


def child_command(argv: Sequence[str]) -> list[str]:
    """The command a child runs: this interpreter, gw's module (or ``CHILD_COMMAND_ENV``'s
    command), the same arguments."""
    prefix = os.environ.get(CHILD_COMMAND_ENV)
    if not prefix:
        return [sys.executable, "-m", "graphile_worker_cli", *argv]
    try:
        command = json.loads(prefix)
    except ValueError:
        command = None
    if isinstance(command, list) and command and all(isinstance(p, str) for p in command):
        return [*command, *argv]
    raise ConfigError(f"{CHILD_COMMAND_ENV} must be a JSON array of strings, got {prefix!r}")


class Supervisor:
    def __init__(self, command: Sequence[str], env: Mapping[str, str], count: int) -> None:
        self._command = list(command)
        self._env = dict(env)
        self._slots = [_Slot(index) for index in range(count)]
        self._stopping = False
        self._signals = 0
        self._changed = asyncio.Event()

    @property
    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots if s.process and s.process.returncode is None]

    async def run(self, *, handle_signals: bool = True) -> int:
        """Run the children until they have all stopped; return the worst exit code.
        ``handle_signals``: forward SIGINT/SIGTERM/SIGHUP to them (else ``request_stop``)."""
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        try:
            for sig in OS_SIGNALS if handle_signals else ():
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
            for slot in self._slots:
                await self._start(slot)
            await self._watch()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
            await self._kill_leftovers()
        return _worst([slot.last_code for slot in self._slots])

    def request_stop(self) -> None:
        """Stop the children as SIGTERM would (a second call: as a second SIGTERM)."""
        self._stop_children(signal.SIGTERM, "stop requested")

    def _on_signal(self, sig: signal.Signals) -> None:
        self._stop_children(sig, f"received {sig.name}")

    def _stop_children(self, sig: signal.Signals, reason: str) -> None:
        self._signals += 1
        if not self._stopping:
            log.info("%s: stopping %d worker process(es)", reason, len(self.pids))
        self._stopping = True
        self._forward(sig)
        self._changed.set()

    def _forward(self, sig: signal.Signals) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    async def _start(self, slot: _Slot) -> None:
        env = {**self._env, CHILD_ENV: str(slot.index)}
        slot.process = await asyncio.create_subprocess_exec(
            *self._command, env=env, preexec_fn=_child_setup,
        )
        slot.started = asyncio.get_running_loop().time()
        slot.waiter = asyncio.get_running_loop().create_task(slot.process.wait())
        log.info("worker process %d started (pid %d)", slot.index, slot.process.pid,
                 extra={"gw": {"action": "child_start", "slot": slot.index,
                               "pid": slot.process.pid}})
        if self._stopping:  # a signal arrived while it was spawning
            with contextlib.suppress(ProcessLookupError):
                slot.process.send_signal(signal.SIGTERM)

    async def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        restarts: dict[asyncio.Task[Any], _Slot] = {}
        while True:
            waiters: dict[asyncio.Task[Any], _Slot] = {
                s.waiter: s for s in self._slots if s.waiter is not None
            }
            if not waiters and not restarts:
                return
            changed: asyncio.Task[Any] = loop.create_task(self._changed.wait())
            done, _ = await asyncio.wait(
                {*waiters, *restarts, changed}, return_when=asyncio.FIRST_COMPLETED
            )
            changed.cancel()
            self._changed.clear()
            if self._stopping:
                for task in restarts:
                    task.cancel()
                restarts.clear()
            for task in done:
                if task in restarts:
                    restarts.pop(task)
                elif task in waiters:
                    slot = waiters[task]
                    slot.waiter = None
                    restart = self._exited(slot, int(task.result()), loop.time())
                    if restart is not None:
                        timer = loop.create_task(self._restart_later(slot, restart))
                        restarts[timer] = slot

    def _exited(self, slot: _Slot, code: int, now: float) -> float | None:
        """Record a child's exit; return the delay before restarting it, or None."""
        slot.last_code = code
        pid = slot.process.pid if slot.process else 0
        if self._stopping or code in _NO_RESTART:
            log.info("worker process %d (pid %d) exited with code %d", slot.index, pid, code)
            if code == EXIT_SCHEMA_TOO_NEW and not self._stopping:
                self._stopping = True
                self._forward(signal.SIGTERM)
            return None
        if now - slot.started >= HEALTHY_AFTER:
            slot.failures = 0
        slot.failures += 1
        delay = backoff.delay(slot.failures, base=RESTART_BASE, cap=RESTART_CAP)
        log.error(
            "worker process %d (pid %d) crashed (%s); restarting in %.1fs",
            slot.index, pid, _describe(code), delay,
            extra={"gw": {"action": "child_crash", "slot": slot.index, "code": code}},
        )
        return delay

    async def _restart_later(self, slot: _Slot, delay: float) -> None:
        await asyncio.sleep(delay)
        if not self._stopping:
            await self._start(slot)

    async def _kill_leftovers(self) -> None:
        for slot in self._slots:
            process = slot.process
            if process is not None and process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                with contextlib.suppress(Exception):
                    await process.wait()


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _worst(codes: Sequence[int]) -> int:
    """57 if any child got it; else the highest exit code (a signal death counts as
    128 + the signal number)."""
    if EXIT_SCHEMA_TOO_NEW in codes:
        return EXIT_SCHEMA_TOO_NEW
    return max((128 - code if code < 0 else code for code in codes), default=0)
