"""docs/label-formats.md lists every registered format, as the registry renders it, and the
README links to it."""

from __future__ import annotations

from pathlib import Path

from sunrise_common.labels import FORMATS, registry

ROOT = Path(__file__).resolve().parents[2]


def test_the_docs_table_is_the_registry_table():
    page = (ROOT / "docs" / "label-formats.md").read_text()
    assert registry.docs_table() in page, "regenerate the table: registry.docs_table()"
    for f in FORMATS:
        assert f"`{f.kind}`" in page


def test_the_readme_links_the_label_formats_page():
    assert "(docs/label-formats.md)" in (ROOT / "README.md").read_text()
