"""What an executor is, and the two loops that drive an operation with one.

A statement the server refuses is thrown into the operation as gw's error: an operation
that does not catch it raises it unchanged; one that does may go on (after rolling back to
a savepoint, say)."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from graphile_worker_cli.errors import GraphileWorkerError
from graphile_worker_cli.operations import Operation, Row, Statement

T = TypeVar("T")


class AsyncExecutor(Protocol):
    """Runs statements on one connection, inside whatever transaction it has open."""

    @property
    def connection(self) -> Any:
        """The connection the statements run on (what JobScheduled hooks see)."""

    async def fetch(self, statement: Statement) -> list[Row]:
        """The statement's rows; driver errors become gw's errors."""

    async def in_transaction(self) -> bool:
        """Whether statements run inside a transaction the caller ends (not each one
        committed on its own): an open one, or one the driver begins implicitly."""


class SyncExecutor(Protocol):
    """The blocking twin of ``AsyncExecutor``."""

    @property
    def connection(self) -> Any: ...

    def fetch(self, statement: Statement) -> list[Row]: ...

    def in_transaction(self) -> bool: ...


async def run_async(operation: Operation[T], executor: AsyncExecutor) -> T:
    """Run ``operation``'s statements on ``executor``; return its result."""
    try:
        statement = next(operation)
        while True:
            try:
                rows = await executor.fetch(statement)
            except GraphileWorkerError as error:
                statement = operation.throw(error)
            else:
                statement = operation.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result


def run_sync(operation: Operation[T], executor: SyncExecutor) -> T:
    """Run ``operation``'s statements on ``executor``; return its result."""
    try:
        statement = next(operation)
        while True:
            try:
                rows = executor.fetch(statement)
            except GraphileWorkerError as error:
                statement = operation.throw(error)
            else:
                statement = operation.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result
