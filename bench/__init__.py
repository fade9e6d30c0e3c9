"""gw's benchmark: gw against the Node.js reference (graphile-worker 0.18.0), same run,
same machine. Run it with ``python -m bench`` or ``python bench/run.py`` (see README.md)."""
