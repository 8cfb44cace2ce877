"""Rewrite the format table of docs/label-formats.md from the registry.

``uv run python -m sunrise_common.labels.docs docs/label-formats.md`` replaces the table under
``## Supported formats`` with ``registry.docs_table()`` (tests/labels/test_label_docs.py fails
while the page and the registry differ).
"""

from __future__ import annotations

import sys
from pathlib import Path

from . import registry


def write_docs_table(path: Path) -> None:
    text = path.read_text()
    a = text.index("## Supported formats\n\n") + len("## Supported formats\n\n")
    b = text.index("\n## ", a)
    path.write_text(text[:a] + registry.docs_table() + text[b:])


if __name__ == "__main__":
    write_docs_table(Path(sys.argv[1]))
