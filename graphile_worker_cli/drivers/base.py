"""What an executor is, and the two loops that drive an operation with one."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from graphile_worker_cli.operations import Operation, Row, Statement

T = TypeVar("T")


class AsyncExecutor(Protocol):
    """Runs statements on one connection, inside whatever transaction it has open."""

    @property
    def connection(self) -> Any:
        """The connection the statements run on (what JobScheduled hooks see)."""

    async def fetch(self, statement: Statement) -> list[Row]:
        """The statement's rows; driver errors become gw's errors."""


class SyncExecutor(Protocol):
    """The blocking twin of ``AsyncExecutor``."""

    @property
    def connection(self) -> Any: ...

    def fetch(self, statement: Statement) -> list[Row]: ...


async def run_async(operation: Operation[T], executor: AsyncExecutor) -> T:
    """Run ``operation``'s statements on ``executor``; return its result."""
    try:
        statement = next(operation)
        while True:
            statement = operation.send(await executor.fetch(statement))
    except StopIteration as done:
        result: T = done.value
        return result


def run_sync(operation: Operation[T], executor: SyncExecutor) -> T:
    """Run ``operation``'s statements on ``executor``; return its result."""
    try:
        statement = next(operation)
        while True:
            statement = operation.send(executor.fetch(statement))
    except StopIteration as done:
        result: T = done.value
        return result
