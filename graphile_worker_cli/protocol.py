"""The Graphile Worker release gw speaks, in a module that imports nothing (``gw --version``
reads it without loading the database stack)."""

from __future__ import annotations

LATEST_MIGRATION = 20
PROTOCOL_VERSION = "0.18.0"
"""The Graphile Worker release whose schema and protocol gw speaks."""
