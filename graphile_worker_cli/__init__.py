"""gw — Graphile Worker for Python."""

__version__ = "0.1.0"
