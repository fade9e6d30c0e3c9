"""gw's version, in a leaf module: the worker registry and the admin API report it
without importing the package root (which re-exports the whole public API)."""

__version__ = "0.1.0"
