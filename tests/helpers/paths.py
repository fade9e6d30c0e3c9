"""Where things are: the repository and the ``gw`` executable of the running interpreter."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
"""Task directories and modules the task-loading tests read, and a CA certificate (tls/)."""
GW = str(Path(sys.executable).parent / "gw")
"""The ``gw`` console script installed beside the interpreter running the tests."""
