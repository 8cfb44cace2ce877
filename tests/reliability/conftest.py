"""``--cpu-hogs N``: run the reliability tests with N busy processes beside them, started before
the first test and stopped after the last by the harness itself (reliability/load.py)."""

from __future__ import annotations

import pytest

from reliability.load import cpu_hogs, running


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-hogs", type=int, default=0,
                     help="busy processes to run beside the reliability tests (default 0)")


@pytest.fixture(scope="session", autouse=True)
def loaded_machine(request: pytest.FixtureRequest):
    n = request.config.getoption("--cpu-hogs", default=0)  # unknown when the whole suite runs
    with cpu_hogs(n) as procs:
        yield procs
        if not running(procs):
            pytest.fail("a CPU hog died during the run: the load was not there throughout", pytrace=False)
