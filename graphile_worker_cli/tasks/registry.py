"""``TaskRegistry``: the tasks a worker knows, by identifier, one definition each."""

from __future__ import annotations

from collections.abc import Iterator

from graphile_worker_cli.errors import TaskLoadError
from graphile_worker_cli.tasks.definition import TaskDefinition, define_task


class TaskRegistry:
    """Identifier → ``TaskDefinition``. Adding an identifier twice is a ``TaskLoadError``
    that names both definitions' sources."""

    def __init__(self, definitions: list[TaskDefinition] | None = None) -> None:
        self._tasks: dict[str, TaskDefinition] = {}
        for definition in definitions or []:
            self.add(definition)

    def add(self, definition: TaskDefinition) -> None:
        existing = self._tasks.get(definition.identifier)
        if existing is not None:
            raise TaskLoadError(
                f'task "{definition.identifier}" is defined twice: in {existing.source} '
                f"and in {definition.source}; each task identifier must be defined once"
            )
        self._tasks[definition.identifier] = definition

    def define(self, obj: object, identifier: str | None = None) -> TaskDefinition:
        """``add(define_task(obj, identifier))``, returning the definition."""
        definition = define_task(obj, identifier)
        self.add(definition)
        return definition

    def merge(self, other: TaskRegistry) -> None:
        """Add every task of ``other``; nothing is added if one of them is a duplicate."""
        for definition in other:
            if definition.identifier in self._tasks:
                self.add(definition)  # raises, naming both sources
        for definition in other:
            self.add(definition)

    def get(self, identifier: str) -> TaskDefinition | None:
        return self._tasks.get(identifier)

    def identifiers(self) -> list[str]:
        """The identifiers, sorted."""
        return sorted(self._tasks)

    def __contains__(self, identifier: object) -> bool:
        return identifier in self._tasks

    def __getitem__(self, identifier: str) -> TaskDefinition:
        try:
            return self._tasks[identifier]
        except KeyError:
            raise KeyError(f'unknown task "{identifier}"') from None

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[TaskDefinition]:
        return iter([self._tasks[name] for name in sorted(self._tasks)])

    def __repr__(self) -> str:
        return f"<TaskRegistry {self.identifiers()}>"
