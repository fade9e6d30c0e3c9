#!/usr/bin/env bash
# Set up gw in ./.venv and run the example tasks once. With no DATABASE_URL (and no
# worker.toml naming one), gw starts an embedded PostgreSQL in ./.gw/pgdata for each
# command and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# Install only when the project's dependencies changed since the last install: the stamp
# holds a hash of pyproject.toml (and of the interpreter), written after a good install.
STAMP=.venv/.gw-demo-installed
wanted="$(cat pyproject.toml <(.venv/bin/python -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ] || ! .venv/bin/python -c 'import graphile_worker_cli, pgserver' 2>/dev/null; then
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e '.[embedded]'
    echo "$wanted" > "$STAMP"
fi
gw=.venv/bin/gw

$gw migrate
$gw add-job send_email '{"to": "ada@example.com", "subject": "Welcome"}'
$gw add-job hello '{"name": "Ada"}'
$gw add-job resize_image '{"path": "uploads/cat.png", "width": 640}'
$gw add-job index_records '[{"id": 1, "title": "Intro"}, {"id": 2, "title": ""}]'
$gw add-job flaky_webhook '{"url": "https://example.com/hook", "succeed_on_attempt": 2}'
$gw run --once --tasks tasks_example
echo
echo "Jobs left in the queue (a failed batch item and a webhook waiting to retry):"
$gw jobs list
