#!/usr/bin/env bash
# The fast check: ruff, mypy and the unit tier (tests/unit). Needs Python 3.11+ and pip
# only: no PostgreSQL, Node.js or chromium (unit tests may not open a connection or start a
# process). Extra arguments go to pytest. The whole suite is scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
.venv/bin/python -m ruff check graphile_worker_cli tests bench
.venv/bin/python -m mypy
.venv/bin/python -m pytest tests/unit "$@"
