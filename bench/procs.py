"""Subprocesses with a deadline on everything: one-shot runs, long-running workers, RSS."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

STOP_GRACE = 15.0


@dataclass
class Result:
    returncode: int | None  # None: killed at the deadline
    seconds: float
    output: str

    def tail(self, lines: int = 5) -> str:
        text = " | ".join(self.output.strip().splitlines()[-lines:])
        if self.returncode is None:
            return f"timed out; {text}"
        return f"exit {self.returncode}; {text}"

    @property
    def ok(self) -> bool:
        return self.returncode == 0


async def _spawn(
    argv: list[str], *, env: dict[str, str] | None, cwd: Path | None, log: int
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL, stdout=log,
        stderr=asyncio.subprocess.STDOUT, start_new_session=True,
    )


def _kill_group(proc: asyncio.subprocess.Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


async def run(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
    timeout: float,
) -> Result:
    """Run to exit; wall time from just before spawn to exit. Killed at the deadline."""
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        proc = await _spawn(argv, env=env, cwd=cwd, log=log.fileno())
        try:
            code: int | None = await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            code = None
        finally:
            if proc.returncode is None:
                _kill_group(proc, signal.SIGKILL)
                await proc.wait()
        seconds = time.perf_counter() - started
        log.seek(0)
        return Result(code, seconds, log.read().decode(errors="replace"))


@dataclass
class Spoken(Result):
    """A run whose first output was timed: ``spoke_at`` is seconds from spawn to its first
    byte on stdout/stderr (None: it printed nothing)."""

    spoke_at: float | None = None

    @property
    def working_seconds(self) -> float:
        """From the first output (start-up done) to exit; wall time if it never spoke."""
        return self.seconds - (self.spoke_at or 0.0)


TAIL_BYTES = 16_384


async def run_spoken(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None,
    timeout: float,
) -> Spoken:
    """Like ``run``, through a pipe read as it comes: the first byte's time is kept (a
    worker's first log line comes once imports and configuration are done), and only the
    output's tail (a million-job drain of the reference logs a line per job)."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    assert proc.stdout is not None
    tail = bytearray()
    spoke_at: float | None = None

    async def read() -> None:
        nonlocal spoke_at, tail
        assert proc.stdout is not None
        while chunk := await proc.stdout.read(65_536):
            if spoke_at is None:
                spoke_at = time.perf_counter() - started
            tail += chunk
            if len(tail) > 2 * TAIL_BYTES:
                tail = tail[-TAIL_BYTES:]

    reader = asyncio.ensure_future(read())
    code: int | None
    try:
        await asyncio.wait_for(asyncio.shield(reader), timeout)
        code = await asyncio.wait_for(proc.wait(), max(1.0, timeout))
    except TimeoutError:
        code = None
    finally:
        if proc.returncode is None:
            _kill_group(proc, signal.SIGKILL)
            await proc.wait()
        seconds = time.perf_counter() - started
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader, 5.0)
        reader.cancel()
    text = bytes(tail[-TAIL_BYTES:]).decode(errors="replace")
    return Spoken(code, seconds, text, spoke_at)


class Running:
    """A long-running worker; ``stop()`` sends SIGTERM, then SIGKILL after a grace."""

    def __init__(
        self, proc: asyncio.subprocess.Process, log: tempfile._TemporaryFileWrapper[bytes]
    ) -> None:
        self.proc = proc
        self._log = log

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        self._log.flush()
        with open(self._log.name, "rb") as f:
            return f.read().decode(errors="replace")

    def tail(self, lines: int = 5) -> str:
        return " | ".join(self.output().strip().splitlines()[-lines:])

    async def stop(self) -> int | None:
        if self.proc.returncode is None:
            _kill_group(self.proc, signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_GRACE)
            except TimeoutError:
                _kill_group(self.proc, signal.SIGKILL)
                await self.proc.wait()
        self._log.close()
        return self.proc.returncode


async def start(
    argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None
) -> Running:
    log = tempfile.NamedTemporaryFile(prefix="gwbench-", suffix=".log")  # noqa: SIM115
    proc = await _spawn(argv, env=env, cwd=cwd, log=log.fileno())
    return Running(proc, log)


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # the command name may hold spaces and parentheses: fields follow the last ")"
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def tree_rss_kib(pid: int) -> int:
    """VmRSS summed over ``pid`` and all its descendants, in KiB."""
    tree = _children()
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        stack.extend(tree.get(current, []))
        try:
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total
