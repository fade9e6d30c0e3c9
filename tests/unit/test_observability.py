"""The metrics plugin without a database: a port already taken is a one-line error."""

from __future__ import annotations

import socket

import pytest

from graphile_worker_cli.errors import BadInputError
from graphile_worker_cli.observability.metrics import MetricsPlugin


async def test_metrics_port_taken_is_a_one_line_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        plugin = MetricsPlugin(port=port, host="127.0.0.1")
        with pytest.raises(BadInputError, match=f"cannot serve metrics on 127.0.0.1:{port}"):
            plugin.serve()
