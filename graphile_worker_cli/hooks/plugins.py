"""Plugins named by a string, as in worker.toml: ``plugins = ["pkg.module:Plugin"]``.

The object after the colon may be a ``Plugin`` class (instantiated without arguments), a
plugin instance (anything with ``register(registry)``), or a function taking the registry.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

from graphile_worker_cli.errors import PluginLoadError
from graphile_worker_cli.hooks.registry import HookRegistry

__all__ = ["load_plugin", "load_plugins"]

EXPECTED = "expected 'package.module:Name' naming a Plugin class, instance or function"


def load_plugin(path: str) -> Any:
    """Import what ``path`` names and return a plugin instance (or registering function)."""
    if not isinstance(path, str) or path.count(":") != 1:
        raise PluginLoadError(f"invalid plugin {path!r}: {EXPECTED}")
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise PluginLoadError(f"invalid plugin {path!r}: {EXPECTED}")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise PluginLoadError(
            f"cannot load plugin {path!r}: importing {module_name!r} failed "
            f"({type(error).__name__}: {error})"
        ) from None
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise PluginLoadError(
                f"cannot load plugin {path!r}: module {module_name!r} has no {attribute!r}"
            ) from None
    if isinstance(target, type):
        try:
            target = target()
        except Exception as error:
            raise PluginLoadError(
                f"cannot load plugin {path!r}: {attribute}() failed "
                f"({type(error).__name__}: {error})"
            ) from None
    if not callable(getattr(target, "register", None)) and not callable(target):
        raise PluginLoadError(f"cannot load plugin {path!r}: {EXPECTED}")
    return target


def install(registry: HookRegistry, plugin: Any, name: str = "") -> None:
    """Register one plugin (object with ``register`` or a function) on ``registry``."""
    try:
        if callable(getattr(plugin, "register", None)):
            registry.add_plugin(plugin)
        else:
            plugin(registry)
    except PluginLoadError:
        raise
    except Exception as error:
        label = name or repr(plugin)
        raise PluginLoadError(
            f"plugin {label!r} failed to register its hooks ({type(error).__name__}: {error})"
        ) from None


def load_plugins(paths: Iterable[str], registry: HookRegistry | None = None) -> HookRegistry:
    """Load and register every plugin named in ``paths`` (in order)."""
    registry = registry if registry is not None else HookRegistry()
    for path in paths:
        install(registry, load_plugin(path), path)
    return registry
