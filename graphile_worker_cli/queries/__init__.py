"""Every SQL statement of gw, one module per concern.

A statement is a :class:`Query` constant: its text names the schema as ``{s}`` and takes
its values as ``$1, $2...`` parameters, never formatted into the text. The layer that owns
a concern runs its statements; nothing outside this package holds SQL text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from graphile_worker_cli import db


@dataclass(frozen=True)
class Query:
    """One SQL statement; ``{s}`` in ``text`` stands for the schema, nothing else."""

    text: str
    name: str = field(default="", compare=False)

    def sql(self, schema: str) -> str:
        """The statement with ``schema`` quoted safely in place of ``{s}``."""
        return _render(self.text, schema)


@lru_cache(maxsize=512)
def _render(text: str, schema: str) -> str:
    return text.replace("{s}", db.escape_identifier(schema))
