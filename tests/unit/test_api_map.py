"""docs/api.md and the package root agree: every name the map marks *(root)* imports from
``graphile_worker_cli`` (tests/unit/test_exports.py checks that the exports resolve)."""

from __future__ import annotations

import re

import graphile_worker_cli
from tests.helpers.paths import REPO_ROOT

ROOT_MARK = re.compile(r"((?:`\w+`(?:, | / )?)+) \*\(root\)\*")


def root_names_in_the_map() -> set[str]:
    text = (REPO_ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    names: set[str] = set()
    for match in ROOT_MARK.finditer(text):
        names.update(re.findall(r"`(\w+)`", match.group(1)))
    names.discard("graphile_worker_cli")  # the crates table names the package itself
    return names


def test_every_root_name_of_the_map_is_exported() -> None:
    names = root_names_in_the_map()
    assert {"WorkerUtils", "ReadOnlyExtensions", "WorkerRecoveryConfig"} <= names
    assert sorted(names - set(graphile_worker_cli.__all__)) == []

