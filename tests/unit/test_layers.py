"""The package's layers (docs/architecture.md): no import cycle among its modules, and each
group imports only the groups below it. Every import counts: module level, inside
functions, and under ``if TYPE_CHECKING`` (a type-only cycle is a cycle for a reader)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import graphile_worker_cli

PACKAGE_DIR = Path(graphile_worker_cli.__file__).parent
ROOT = "graphile_worker_cli"

ALLOWED_CYCLES: frozenset[frozenset[str]] = frozenset()
"""Import cycles still tolerated, by module names relative to the package."""


@cache
def modules() -> dict[str, Path]:
    """Module name relative to the package ('' for the root) -> file."""
    found = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE_DIR).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _absolute(name: str) -> str | None:
    """A dotted name relative to the package, or None when it is outside the package."""
    if name == ROOT:
        return ""
    if name.startswith(ROOT + "."):
        return name[len(ROOT) + 1:]
    return None


def _nearest_module(name: str) -> str:
    known = modules()
    while name not in known:
        name = name.rpartition(".")[0]
    return name


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    known = modules()
    if isinstance(node, ast.Import):
        for alias in node.names:
            name = _absolute(alias.name)
            if name is not None:
                yield _nearest_module(name)
        return
    if node.level:
        package = module.split(".") if known[module].name == "__init__.py" else \
            module.split(".")[:-1]
        base_parts = package[: len(package) - (node.level - 1)]
        base = ".".join(base_parts + ([node.module] if node.module else []))
    else:
        absolute = _absolute(node.module or "")
        if absolute is None:
            return
        base = absolute
    for alias in node.names:
        full = f"{base}.{alias.name}" if base else alias.name
        yield full if full in known else _nearest_module(base)


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Module -> the package modules it imports (anywhere in its body)."""
    graph = {}
    for module, path in modules().items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets.update(_targets(module, node))
        targets.discard(module)
        graph[module] = frozenset(targets)
    return graph


@cache
def third_party_imports() -> dict[str, frozenset[str]]:
    """Module -> the top-level names of the outside packages it imports."""
    found = {}
    for module, path in modules().items():
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.partition(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.partition(".")[0])
        names.discard(ROOT)
        found[module] = frozenset(names)
    return found


def strongly_connected(graph: dict[str, frozenset[str]]) -> list[frozenset[str]]:
    """Tarjan's components of size > 1 (iterative: the graph may be deep)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(frozenset(component))
    return components


def group(module: str) -> str:
    """The layer group of a module: its top-level package or module name."""
    return module.partition(".")[0] or "(root)"


# --- the rules ------------------------------------------------------------------------------

LEAVES = frozenset({
    "errors", "version", "extensions", "task_outcome", "durations", "js_json", "job",
    "stall_watchdog",
})
"""Modules that import nothing of the package but ``errors`` (and each other, when listed
in LEAF_IMPORTS)."""
LEAF_IMPORTS = {"job": {"errors"}, "js_json": {"errors"}}

LAYERS: dict[str, frozenset[str]] = {
    # group -> the groups it must NOT import (the layers above it)
    "queries": frozenset({
        "admin", "cli", "context", "cron", "hooks", "migrate", "observability", "operations",
        "recovery", "sync", "tasks", "testing", "worker", "worker_utils", "contrib",
    }),
    "db": frozenset({"queries", "operations", "drivers", "hooks", "context", "tasks",
                     "worker", "worker_utils", "recovery", "migrate", "cli"}),
    "hooks": frozenset({"context", "tasks", "worker", "worker_utils", "sync", "cli",
                        "admin", "observability", "migrate"}),
    "context": frozenset({"worker_utils", "worker", "tasks", "recovery", "cron", "cli",
                          "sync", "admin", "observability", "operations", "migrate"}),
    "job_transaction": frozenset({"worker_utils", "worker", "tasks", "recovery", "cron", "cli",
                                  "sync", "admin", "observability", "operations", "migrate",
                                  "context"}),
    "tasks": frozenset({"worker", "worker_utils", "cli", "admin", "recovery", "cron"}),
    "cron": frozenset({"worker", "worker_utils", "cli", "tasks", "context", "recovery",
                       "admin"}),
    "recovery": frozenset({"worker", "worker_utils", "cli", "tasks", "context", "cron",
                           "admin", "sync"}),
    "operations": frozenset({"worker", "worker_utils", "cli", "hooks", "context", "db"}),
    "drivers": frozenset({"worker", "worker_utils", "cli", "hooks", "context"}),
    "migrate": frozenset({"worker", "worker_utils", "cli", "hooks", "context", "tasks"}),
    "worker_utils": frozenset({"worker", "cli", "context", "tasks", "admin"}),
    # One job on a connection of its own (gw add-job): no pool, no operations layer.
    "quick_add": frozenset({"worker", "worker_utils", "cli", "context", "tasks", "admin",
                            "hooks", "operations", "drivers", "recovery", "cron", "sync"}),
    "worker": frozenset({"cli", "admin"}),
}
"""Group -> groups it must not import. ``cli`` is the top: nothing imports it."""

NO_ASYNCPG = frozenset({"cli"})
"""Groups that must not import asyncpg (they call library functions instead)."""
NO_ASYNCPG_YET: frozenset[str] = frozenset()
"""Modules allowed to import asyncpg for now (none left since the runner landed)."""


LAYER_EXCEPTIONS: frozenset[tuple[str, str]] = frozenset()
"""Imports across the layers still tolerated (module, imported module)."""


def _edges() -> Iterator[tuple[str, str]]:
    for module, targets in import_graph().items():
        for target in targets:
            yield module, target


# --- tests ----------------------------------------------------------------------------------


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    assert "errors" in graph["job"]  # module level
    assert "hooks" in graph["context"]  # under TYPE_CHECKING
    assert "recovery" in graph["worker_utils"]  # inside a function


def test_the_cycle_finder_finds_cycles() -> None:
    assert strongly_connected({"a": frozenset({"b"}), "b": frozenset({"a"}), "c": frozenset()}) \
        == [frozenset({"a", "b"})]
    assert strongly_connected({"a": frozenset({"b"}), "b": frozenset()}) == []


def test_no_import_cycle() -> None:
    cycles = strongly_connected(import_graph())
    unexpected = [sorted(cycle) for cycle in cycles if cycle not in ALLOWED_CYCLES]
    assert unexpected == [], f"import cycles among package modules: {unexpected}"


def test_allowed_cycles_still_exist() -> None:
    """An allowed cycle that is gone leaves ALLOWED_CYCLES (so no new one hides there)."""
    cycles = set(strongly_connected(import_graph()))
    assert sorted(sorted(c) for c in ALLOWED_CYCLES - cycles) == []


def test_leaves_import_nothing_of_the_package() -> None:
    graph = import_graph()
    wrong = {
        leaf: sorted(graph[leaf] - LEAF_IMPORTS.get(leaf, set()) - {"errors"})
        for leaf in LEAVES
    }
    assert {leaf: targets for leaf, targets in wrong.items() if targets} == {}


def test_layers() -> None:
    wrong = []
    for module, target in _edges():
        forbidden = LAYERS.get(group(module), frozenset())
        if group(target) in forbidden and (module, target) not in LAYER_EXCEPTIONS:
            wrong.append(f"{module} imports {target}")
    assert wrong == []


ENTRY_POINTS = frozenset({"__main__", "contrib.django.management.commands.gw"})
"""Modules that start the command line (``python -m``, ``manage.py gw``)."""


def test_only_the_cli_and_applications_use_the_runner() -> None:
    """The runner sits on top of the worker: no library layer below it imports it."""
    below = {"queries", "db", "hooks", "context", "tasks", "cron", "recovery", "operations",
             "drivers", "migrate", "worker_utils", "sync", "worker", "job", "job_input"}
    wrong = [f"{module} imports runner" for module, target in _edges()
             if target == "runner" and group(module) in below]
    assert wrong == []


def test_nothing_but_entry_points_imports_the_cli() -> None:
    wrong = [
        f"{module} imports {target}" for module, target in _edges()
        if group(target) == "cli" and group(module) != "cli" and module not in ENTRY_POINTS
    ]
    assert wrong == []


def test_only_the_cli_and_entry_points_import_the_package_root() -> None:
    """The root re-exports the public API; a module inside importing it would depend on
    everything."""
    wrong = [
        module for module, targets in import_graph().items()
        if "" in targets and group(module) not in ("cli", "__main__", "contrib")
    ]
    assert wrong == []


def test_queries_import_only_the_database_layer_and_leaves() -> None:
    allowed = {"db"} | LEAVES
    wrong = [
        f"{module} imports {target}" for module, target in _edges()
        if group(module) == "queries" and group(target) != "queries" and target not in allowed
    ]
    assert wrong == []


def test_the_cli_does_not_use_asyncpg() -> None:
    using = {
        module for module, names in third_party_imports().items()
        if group(module) in NO_ASYNCPG and "asyncpg" in names
    }
    assert sorted(using - NO_ASYNCPG_YET) == []
    assert sorted(NO_ASYNCPG_YET - using) == [], "remove these from NO_ASYNCPG_YET"


def test_worker_utils_satisfies_the_jobs_api_protocol() -> None:
    """WorkerContext.utils is typed JobsApi; the worker gives it a WorkerUtils (mypy checks
    the assignment below; this checks the methods exist at run time too)."""
    from graphile_worker_cli.jobs_api import JobsApi
    from graphile_worker_cli.worker_utils import WorkerUtils

    utils: JobsApi = WorkerUtils(schema="graphile_worker")
    protocol_methods = {
        name for name in vars(JobsApi) if not name.startswith("_")
    }
    assert protocol_methods <= set(dir(utils))
