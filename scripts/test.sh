#!/usr/bin/env bash
# Set up a virtualenv, the pinned Node.js reference, and run the whole test suite.
# This is the README's test command; CI runs it through .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev,embedded]'
npm ci --prefix tests/interop --no-audit --no-fund --loglevel=error
# The admin dashboard's browser tests drive Debian's chromium (Playwright never downloads one).
if [ ! -x /usr/bin/chromium ]; then
    apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
# The PgBouncer tests (tests/acceptance/test_pgbouncer.py) start Debian's pgbouncer.
if [ ! -x /usr/sbin/pgbouncer ]; then
    apt-get update -qq && apt-get install -y -qq pgbouncer >/dev/null
fi
.venv/bin/python -m ruff check graphile_worker_cli tests bench
.venv/bin/python -m mypy
.venv/bin/python -m pytest "$@"
