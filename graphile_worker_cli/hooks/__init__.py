"""Lifecycle hooks: observe worker and job events, intercept runs, schedules and recovery.

```python
from graphile_worker_cli import hooks

options.on(hooks.JobStart, lambda ctx: print("starting", ctx.job.id))
options.on(hooks.BeforeJobRun, skip_when_flagged)    # returns hooks.HookResult.SKIP...
options.add_plugin(MyPlugin())                       # MyPlugin.register(registry)
```

Modules: ``events`` (event classes and their context dataclasses), ``results`` (what
interceptors return), ``registry`` (``HookRegistry``), ``plugins`` (loading
``"pkg.module:Plugin"`` names). See docs/hooks.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from graphile_worker_cli.hooks import plugins, registry, results
from graphile_worker_cli.hooks.plugins import *  # noqa: F403
from graphile_worker_cli.hooks.registry import *  # noqa: F403
from graphile_worker_cli.hooks.results import *  # noqa: F403

if TYPE_CHECKING:
    from graphile_worker_cli.hooks.events import *  # noqa: F403

# Each submodule's __all__ is the one list of what it exports from here.


def __getattr__(name: str) -> Any:
    # The event classes are imported on first use: a worker without hooks never needs them,
    # and building all their classes would add to every `gw run`'s start-up.
    if name.startswith("__") and name != "__all__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    events = importlib.import_module("graphile_worker_cli.hooks.events")
    if name == "__all__":
        value: Any = sorted(
            (*plugins.__all__, *registry.__all__, *results.__all__, *events.__all__)
        )
    elif name in events.__all__:
        value = getattr(events, name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value
