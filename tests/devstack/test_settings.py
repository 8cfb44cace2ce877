"""DevStackSettings: the router's and the fault injectors' knobs live with the dev stack, read
from the same variables as before, and a service's settings do not carry them (issue 25, item 3)."""

from __future__ import annotations

import pytest

from sunrise_common.settings import Settings
from sunrise_devstack.settings import DevStackSettings

pytestmark = pytest.mark.usefixtures("no_sunrise_environment")  # settings read the environment

DEV_ONLY = {name for name in DevStackSettings.model_fields if name not in Settings.model_fields}


def test_the_router_and_fault_settings_are_the_dev_stacks_only():
    assert {"router_max_attempts", "router_duplicates", "fault_rate", "fault_ports", "dead_letter_retention_s"} <= DEV_ONLY
    assert all(name.startswith(("router_", "fault_", "dead_letter_")) for name in DEV_ONLY), DEV_ONLY


def test_the_dev_stack_reads_the_same_variables_as_before(no_sunrise_environment):
    no_sunrise_environment.setenv("SUNRISE_ROUTER_MAX_ATTEMPTS", "3")
    no_sunrise_environment.setenv("SUNRISE_FAULT_RATE", "0.25")
    no_sunrise_environment.setenv("SUNRISE_DEAD_LETTER_RETENTION_S", "60")
    no_sunrise_environment.setenv("SUNRISE_PREFIX", "sunrise-dev")
    settings = DevStackSettings()
    assert (settings.router_max_attempts, settings.fault_rate, settings.dead_letter_retention_s) == (3, 0.25, 60.0)
    assert settings.bucket("raw") == Settings().bucket("raw")  # the shared settings are the base class's


def test_a_service_ignores_the_dev_stacks_variables_the_launcher_passes_on(no_sunrise_environment):
    no_sunrise_environment.setenv("SUNRISE_FAULT_RATE", "0.5")
    no_sunrise_environment.setenv("SUNRISE_ROUTER_SHUFFLE", "true")
    settings = Settings()
    assert not any(hasattr(settings, name) for name in DEV_ONLY)


def test_the_dev_stacks_bounds_still_hold(no_sunrise_environment):
    with pytest.raises(ValueError, match="fault_rate"):
        DevStackSettings(fault_rate=1.5)
    with pytest.raises(ValueError, match="router_duplicates"):
        DevStackSettings(router_duplicates=0)
