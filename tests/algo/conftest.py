"""Prepared example nights (the generator's, through the real sunrise_prep), made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from sunrise_cli.algo_commands import example_nights


@pytest.fixture(scope="session")
def nights(tmp_path_factory) -> list[tuple[str, Path, Path]]:
    return example_nights(tmp_path_factory.mktemp("algo-nights"), 2)
