"""Settings: what a cloud deploy must give fails at boot when missing; the local backends need nothing."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sunrise_common import names
from sunrise_common.settings import CLOUD_REQUIRED, DEFAULT_PORTS, Settings

pytestmark = pytest.mark.usefixtures("no_sunrise_environment")  # settings read the environment


@pytest.mark.parametrize(("given", "missing"), [
    ({}, "SUNRISE_PROJECT and SUNRISE_PREFIX"),
    ({"SUNRISE_PREFIX": "sunrise-dev"}, "SUNRISE_PROJECT"),
    ({"SUNRISE_PROJECT": "my-project"}, "SUNRISE_PREFIX"),
    ({"SUNRISE_PROJECT": "  ", "SUNRISE_PREFIX": "sunrise-dev"}, "SUNRISE_PROJECT"),
])  # fmt: skip
def test_the_cloud_backend_fails_at_boot_naming_each_missing_variable(no_sunrise_environment, given, missing):
    no_sunrise_environment.setenv("SUNRISE_BACKEND", "cloud")
    for name, value in given.items():
        no_sunrise_environment.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert f"SUNRISE_BACKEND=cloud needs {missing}:" in str(raised.value)


def test_the_cloud_backend_boots_with_what_terraform_sets(no_sunrise_environment):
    # terraform/run.tf: SUNRISE_BACKEND, SUNRISE_PREFIX, SUNRISE_PROJECT on every service.
    for name, value in {"SUNRISE_BACKEND": "cloud", "SUNRISE_PREFIX": "sunrise-dev", "SUNRISE_PROJECT": "p-1"}.items():
        no_sunrise_environment.setenv(name, value)
    settings = Settings()
    assert (settings.project, settings.bucket("raw"), settings.topic(names.TOPIC_PSG_PREPPED)) == (
        "p-1", "sunrise-dev-raw", "sunrise-dev-psg-prepped")
    assert Settings(backend="cloud", project="p-2", prefix="sunrise-prod").bucket("results") == "sunrise-prod-results"
    assert set(CLOUD_REQUIRED) == {"project", "prefix"}


@pytest.mark.parametrize("backend", ["embedded", "emulators"])
def test_the_local_backends_need_neither_project_nor_prefix(backend):
    settings = Settings(backend=backend)
    assert (settings.project, settings.prefix) == ("sunrise-local", "sunrise-local")


def test_local_ports_are_8081_to_8084_in_the_order_of_names_and_each_url_defaults_to_its_port():
    # That every service has a port and a URL setting: tests/test_services_list.py.
    assert [DEFAULT_PORTS[s] for s in names.SERVICES] == [8081, 8082, 8083, 8084]
    settings = Settings()
    for service, port in DEFAULT_PORTS.items():
        assert settings.service_url(service) == f"http://127.0.0.1:{port}/"
