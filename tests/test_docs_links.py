"""The repository stands alone: every relative link in its Markdown resolves to a file inside it, and no
doc sends a reader to a folder beside the clone (a user who clones the project has no ``../shared``)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _markdown_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.md"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split()
    return [REPO / name for name in listed if not name.startswith("tests/data/") and (REPO / name).is_file()]


def test_there_are_docs_to_check():
    names = {p.relative_to(REPO).as_posix() for p in _markdown_files()}
    assert {"README.md", "docs/architecture.md", "docs/privacy.md"} <= names


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_relative_link_resolves_inside_the_repository(doc: Path):
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        path = (doc.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(REPO) or not path.exists():
            broken.append(target)
    assert broken == []


@pytest.mark.parametrize("doc", _markdown_files(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_doc_points_beside_the_clone(doc: Path):
    text = doc.read_text(encoding="utf-8")
    assert "../shared" not in text
