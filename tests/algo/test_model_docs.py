"""docs/science.md §4 names the packaged model versions and the default the code has
(``sunrise_algo.builtin.model``): a reader choosing a model, or reading which one produced a
result, sees the versions that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from sunrise_algo.builtin.model import DEFAULT_MODEL, MODEL_VERSIONS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "science.md").read_text()


def test_the_models_section_lists_the_packaged_versions_and_the_default_of_the_code():
    versions = re.search(r"`MODEL_VERSIONS = (\([^)]*\))`", DOC)
    default = re.search(r"`DEFAULT_MODEL = \"([^\"]+)\"`", DOC)
    assert versions is not None and default is not None, "docs/science.md §4 names neither"
    assert tuple(ast.literal_eval(versions.group(1))) == MODEL_VERSIONS
    assert default.group(1) == DEFAULT_MODEL
