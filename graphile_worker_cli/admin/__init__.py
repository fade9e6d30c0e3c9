"""The admin dashboard: a web page and a JSON API to inspect and fix a queue (``gw admin``).

Needs the ``admin`` extra (starlette, uvicorn): ``pip install 'graphile-worker-cli[admin]'``.
"""

from __future__ import annotations

from graphile_worker_cli.admin.app import create_app
from graphile_worker_cli.admin.auth import AdminAuth, is_loopback_host

__all__ = ["AdminAuth", "create_app", "is_loopback_host"]
