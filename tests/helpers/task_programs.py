"""Executable task files (shell scripts) written into a test's task directory."""

from __future__ import annotations

from pathlib import Path

RECORD = """\
#!/bin/sh
env | grep '^GRAPHILE_WORKER_' | sort > "$OUT/$GRAPHILE_WORKER_JOB_ID.env"
cat > "$OUT/$GRAPHILE_WORKER_JOB_ID.stdin"
echo "hello from the task"
"""
"""Writes its ``GRAPHILE_WORKER_*`` variables and its stdin to files named after the job in
``$OUT``, and a line to stdout."""


def write_program(folder: Path, name: str, text: str, mode: int = 0o755) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path
