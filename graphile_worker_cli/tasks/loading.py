"""Finding tasks: in a directory of files, in importable modules, and in entry points.

Directory (``--tasks DIR``): ``DIR/a/b.py`` is task ``a/b``. Names (files without ``.py``
and directories) must match ``[A-Za-z0-9_-]+`` as in the reference; names starting with
``_`` or ``.`` are skipped, so ``_shared.py`` can hold code the tasks import with
``from . import _shared``. Each file defines one task: a callable named ``task``, or
exactly one TaskHandler/BatchTaskHandler subclass or ``@task`` function. A file that is
executable and not a ``.py`` file (``DIR/a/b.sh``, ``DIR/a/b``: task ``a/b``, named up to
its first dot as in the reference) runs as a process of its own (``executable``).

Modules (``--tasks-module``) and entry points (group ``graphile_worker.tasks``): see
``module_tasks``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from graphile_worker_cli.errors import TaskLoadError
from graphile_worker_cli.tasks import executable, marks
from graphile_worker_cli.tasks.definition import TaskDefinition, define_task
from graphile_worker_cli.tasks.outcomes import describe_error
from graphile_worker_cli.tasks.registry import TaskRegistry

if TYPE_CHECKING:
    import importlib.metadata

ENTRY_POINT_GROUP = "graphile_worker.tasks"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
EXECUTABLE_NAME_PATTERN = re.compile(r"^([A-Za-z0-9_-]+)((?:\.[A-Za-z0-9_-]+)*)$")
"""An executable's name: the task name, then any extensions (the reference's rule)."""

log = logging.getLogger("gw.tasks")


def _summary(error: BaseException) -> str:
    lines = describe_error(error).splitlines()
    return lines[0] if lines else type(error).__name__


# Directory ----------------------------------------------------------------------------


def load_tasks_directory(path: Path | str) -> TaskRegistry:
    """The tasks defined by the files under ``path``."""
    given = Path(path)
    if not given.exists():
        raise TaskLoadError(
            f"tasks directory {given} does not exist; expected a directory of .py task files"
        )
    if not given.is_dir():
        raise TaskLoadError(
            f"tasks directory {given} is not a directory; expected a directory of .py task files"
        )
    root = given.resolve()
    package = _install_root_package(root)
    importlib.invalidate_caches()
    registry = TaskRegistry()
    for parts, file in _task_files(root, ()):
        identifier = "/".join(parts)
        display = str(given.joinpath(*parts[:-1], file.name))
        if file.suffix == ".py":
            module = _import_task_file(f"{package}.{'.'.join(parts)}", display)
            registry.add(_file_task(module, identifier, display))
        else:
            registry.add(executable.executable_task(file, identifier, source=display))
    if not len(registry):
        log.warning("no tasks found in %s", given)
    return registry


def _install_root_package(root: Path) -> str:
    """A synthetic package whose path is the tasks directory: every file imports under a
    name unique to that directory, and relative imports between task files work."""
    name = "_gw_tasks_" + hashlib.sha1(str(root).encode()).hexdigest()[:12]
    if name not in sys.modules:
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(root)]
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
    return name


def _task_files(directory: Path, prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Path]]:
    python: dict[str, Path] = {}
    programs: dict[str, list[Path]] = {}
    for entry in sorted(directory.iterdir(), key=lambda p: p.name):
        if entry.name.startswith(("_", ".")):
            continue
        if entry.is_dir():
            if NAME_PATTERN.match(entry.name):
                yield from _task_files(entry, (*prefix, entry.name))
            else:
                log.info("ignoring directory %s: its name is not [A-Za-z0-9_-]+", entry)
        elif entry.suffix == ".py" and entry.is_file():
            if NAME_PATTERN.match(entry.stem):
                python[entry.stem] = entry
            else:
                log.info("ignoring file %s: its name is not [A-Za-z0-9_-]+.py", entry)
        elif executable.is_executable_file(entry):
            matched = EXECUTABLE_NAME_PATTERN.match(entry.name)
            if matched:
                programs.setdefault(matched.group(1), []).append(entry)
            else:
                log.info("ignoring executable %s: its name is not [A-Za-z0-9_-]+ with "
                         "optional .extensions", entry)
    for name, file in python.items():
        for program in programs.pop(name, []):
            log.info("ignoring executable %s: task %s is %s", program, name, file.name)
        yield (*prefix, name), file
    for name, files in programs.items():
        if len(files) > 1:
            names = " and ".join(str(file) for file in files)
            raise TaskLoadError(
                f"{names} are both executable files for task {'/'.join((*prefix, name))}; "
                "keep one (or remove the execute bit from the others)"
            )
        yield (*prefix, name), files[0]


def _import_task_file(module_name: str, display: str) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except Exception as error:
        raise TaskLoadError(f"could not import task file {display}: {_summary(error)}") from error


def _file_task(module: types.ModuleType, identifier: str, display: str) -> TaskDefinition:
    explicit = getattr(module, "task", None)
    if explicit is not None and explicit is not marks.task and callable(explicit):
        candidates = [explicit]
    else:
        candidates = _defined_tasks(module)
    if not candidates:
        raise TaskLoadError(
            f"{display} defines no task; expected a function named `task`, one "
            "TaskHandler/BatchTaskHandler subclass, or one @task function"
        )
    if len(candidates) > 1:
        names = ", ".join(getattr(c, "__qualname__", repr(c)) for c in candidates)
        raise TaskLoadError(
            f"{display} defines {len(candidates)} tasks ({names}); a task file defines "
            "one (name the one to use `task`, e.g. `task = SendEmail`)"
        )
    obj = candidates[0]
    declared = _declared_identifier(obj)
    if declared is not None and declared != identifier:
        raise TaskLoadError(
            f'{display} is task "{identifier}" but {getattr(obj, "__qualname__", obj)} '
            f'declares identifier "{declared}"; make them match (or load it with --tasks-module)'
        )
    return define_task(obj, identifier, source=display)


def _declared_identifier(obj: object) -> str | None:
    if isinstance(obj, type):
        return marks.declared_identifier(obj)
    mark = marks.task_mark(obj)
    return mark.identifier if mark else None


def _defined_tasks(module: types.ModuleType) -> list[object]:
    """Handler classes and @task functions defined in ``module`` itself (not imported)."""
    found: dict[int, object] = {}  # by identity: one object may have several names
    for value in vars(module).values():
        is_task = marks.is_handler_class(value) or marks.task_mark(value) is not None
        if is_task and getattr(value, "__module__", None) == module.__name__:
            found.setdefault(id(value), value)
    return list(found.values())


# Modules ------------------------------------------------------------------------------


def load_task_modules(names: Sequence[str]) -> TaskRegistry:
    """The tasks of each module in ``names`` (see ``module_tasks``)."""
    registry = TaskRegistry()
    for name in names:
        try:
            module = importlib.import_module(name)
        except Exception as error:
            raise TaskLoadError(
                f"could not import tasks module {name!r}: {_summary(error)}"
            ) from error
        for definition in module_tasks(module, f"module {name}"):
            registry.add(definition)
    return registry


def module_tasks(module: types.ModuleType, source: str) -> list[TaskDefinition]:
    """A module's tasks: its ``TASKS`` (a list of handlers, or a dict identifier → handler)
    if it defines one; otherwise every TaskHandler/BatchTaskHandler subclass and every
    ``@task`` function defined in the module itself."""
    listed = getattr(module, "TASKS", None)
    if listed is None:
        found = _defined_tasks(module)
        if not found:
            raise TaskLoadError(
                f"{source} defines no tasks; expected TaskHandler/BatchTaskHandler "
                "subclasses, @task functions, or a TASKS list"
            )
        return [define_task(obj, source=_member(source, obj)) for obj in found]
    if isinstance(listed, dict):
        return [
            define_task(obj, str(identifier), source=f"{source} (TASKS[{identifier!r}])")
            for identifier, obj in listed.items()
        ]
    if isinstance(listed, list | tuple):
        return [define_task(obj, source=_member(source, obj)) for obj in listed]
    raise TaskLoadError(
        f"{source}: TASKS is a {type(listed).__name__}; expected a list of task handlers "
        "or a dict of identifier → handler"
    )


def _member(source: str, obj: object) -> str:
    return f"{source} ({getattr(obj, '__qualname__', type(obj).__name__)})"


# Entry points -------------------------------------------------------------------------


def load_entry_point_tasks(group: str = ENTRY_POINT_GROUP) -> TaskRegistry:
    """Tasks that installed distributions declare in the entry point group
    ``graphile_worker.tasks``. An entry point may name a TaskHandler/BatchTaskHandler
    subclass (its IDENTIFIER, else the entry point's name), a function (its @task
    identifier, else the entry point's name) or a module (as ``module_tasks``)."""
    registry = TaskRegistry()
    if not may_declare_entry_points(group):
        return registry
    import importlib.metadata

    for entry_point in importlib.metadata.entry_points(group=group):
        for definition in _entry_point_tasks(entry_point):
            registry.add(definition)
    return registry


def may_declare_entry_points(group: str, path: Sequence[str] | None = None) -> bool:
    """Whether an installed distribution may declare entry points in ``group``.

    ``importlib.metadata`` costs a worker's start ~20 ms to import and ~10 ms to scan every
    distribution on this machine, for a group most installations leave empty. This looks
    at the ``entry_points.txt`` files of the ``*.dist-info``/``*.egg-info`` folders on the
    path and says no only when none names the group; a path entry or finder it cannot read
    that way (a zip, an egg, a custom distribution finder) answers yes, and
    ``importlib.metadata`` decides.
    """
    finders = [finder for finder in sys.meta_path if hasattr(finder, "find_distributions")]
    if any(finder is not importlib.machinery.PathFinder for finder in finders):
        return True
    for entry in sys.path if path is None else path:
        folder = entry or "."
        if folder.endswith(".egg"):
            return True
        try:
            names = [item.name for item in os.scandir(folder)
                     if item.name.endswith((".dist-info", ".egg-info"))]
        except (FileNotFoundError, NotADirectoryError):
            if os.path.isfile(folder):
                return True  # a zip archive: importlib.metadata reads inside it
            continue
        except OSError:
            return True
        for name in names:
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), "rb") as file:
                    text = file.read()
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError:
                return True
            if group.encode() in text:
                return True
    return False


def _entry_point_tasks(entry_point: importlib.metadata.EntryPoint) -> list[TaskDefinition]:
    dist = entry_point.dist.name if entry_point.dist is not None else "unknown distribution"
    source = f"entry point {entry_point.name} = {entry_point.value} ({dist})"
    try:
        obj = entry_point.load()
    except Exception as error:
        raise TaskLoadError(f"could not load {source}: {_summary(error)}") from error
    if isinstance(obj, types.ModuleType):
        return module_tasks(obj, source)
    identifier = _declared_identifier(obj) or entry_point.name
    return [define_task(obj, identifier, source=source)]


def load_tasks(
    directory: Path | str | None = None,
    modules: Sequence[str] = (),
    *,
    entry_points: bool = True,
) -> TaskRegistry:
    """Every task from a directory, modules and entry points, in one registry (an
    identifier defined by two sources is a TaskLoadError naming both)."""
    registry = TaskRegistry()
    if directory is not None:
        registry.merge(load_tasks_directory(directory))
    if modules:
        registry.merge(load_task_modules(modules))
    if entry_points:
        registry.merge(load_entry_point_tasks())
    return registry
