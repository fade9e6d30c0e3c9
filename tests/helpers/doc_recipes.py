"""Code blocks of the docs marked ``<!-- recipe: path -->``, ``<!-- django: path -->`` or
``<!-- django-excerpt: path -->``, read as files."""

from __future__ import annotations

import re
from pathlib import Path

from tests.helpers.paths import REPO_ROOT

INTEGRATIONS = REPO_ROOT / "docs" / "integrations.md"
TESTING = REPO_ROOT / "docs" / "testing.md"
BLOCK = re.compile(r"<!-- (recipe|django|django-excerpt): (\S+) -->\n```\w*\n(.*?)```", re.S)


def blocks(doc: Path, kind: str) -> dict[str, str]:
    return {path: text for found, path, text in BLOCK.findall(doc.read_text())
            if found == kind}


def write_recipes(doc: Path, into: Path) -> Path:
    for path, text in blocks(doc, "recipe").items():
        target = into / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return into
