"""The hooks ``gw run`` installs from settings: the plugins named in ``plugins`` and, with
``metrics_port``, the Prometheus plugin (its endpoint bound here, so a taken port or a
missing extra is a one-line error before the worker starts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from graphile_worker_cli.errors import PluginLoadError
from graphile_worker_cli.hooks import HookRegistry, plugins

if TYPE_CHECKING:
    from graphile_worker_cli import config


def hooks_from_settings(settings: config.Settings, *, metrics_offset: int = 0) -> HookRegistry:
    """Load ``settings.plugins`` (in order), then the metrics plugin when a port is set
    (served on ``metrics_port + metrics_offset``: one port per supervised process).

    Raises ``PluginLoadError`` (exit code 2) for a plugin that cannot be loaded,
    ``BadInputError`` when the metrics port cannot be bound."""
    registry = plugins.load_plugins(settings.plugins)
    if settings.metrics_port is not None:
        try:
            from graphile_worker_cli.observability import metrics
        except ImportError as error:
            raise PluginLoadError(
                f"metrics_port is set but {error}"
            ) from None
        plugin = metrics.MetricsPlugin(
            port=settings.metrics_port + metrics_offset, host=settings.metrics_host
        )
        plugin.serve()
        registry.add_plugin(plugin)
    return registry
