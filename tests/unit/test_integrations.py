"""The recipes of docs/integrations.md and docs/testing.md are all there, and the blocks
marked ``django:`` are the Django test project's files (which the acceptance tests run)."""

from __future__ import annotations

from tests.helpers.django_project import PROJECT
from tests.helpers.doc_recipes import INTEGRATIONS, TESTING, blocks


def test_the_docs_have_every_recipe() -> None:
    assert sorted(blocks(INTEGRATIONS, "recipe")) == [
        "fastapi_psycopg.py", "fastapi_sqlalchemy.py", "fastapi_worker.py", "flask_app.py",
        "import_orders.py", "schema.sql", "tasks/send_receipt.py", "worker_script.py",
    ]
    assert sorted(blocks(INTEGRATIONS, "django")) == ["shop/tasks.py", "shop/views.py"]
    assert sorted(blocks(TESTING, "recipe")) == ["conftest.py", "test_sign_up.py"]


def test_django_blocks_are_the_test_projects_files() -> None:
    for path, text in blocks(INTEGRATIONS, "django").items():
        assert (PROJECT / path).read_text() == text, path
    for path, text in blocks(INTEGRATIONS, "django-excerpt").items():
        source = (PROJECT / path).read_text()
        for line in text.splitlines():
            if line.strip() and line.strip() != "# ...":
                assert line in source.splitlines(), f"{path}: {line!r}"
