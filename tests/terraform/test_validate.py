"""`terraform validate` against the provider schema catches what a text parser cannot.

Each case copies terraform/ to a temporary folder, breaks one thing on purpose and runs
``scripts/tfcheck.sh validate`` (real Terraform, the stand-in google provider serving the
published 6.50.0 schema): a misspelt attribute, an attribute or a block at the wrong nesting
level, and a reference to something that does not exist must each fail, with Terraform's own
diagnostic. The unbroken copy must pass, so that a failure is due to the breakage alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import REPO, run_tfcheck

pytestmark = pytest.mark.slow

# (file, exact text to replace, replacement, what Terraform must say)
BREAKAGES = {
    "misspelt attribute": (
        "buckets.tf",
        "  uniform_bucket_level_access = true",
        "  uniform_bucket_level_acess = true",
        'An argument named "uniform_bucket_level_acess" is not expected here',
    ),
    "attribute in the wrong block": (
        "buckets.tf",
        '      action {\n        type = "Delete"\n      }\n      condition {\n        age = lifecycle_rule.value\n      }',
        '      action {\n        type = "Delete"\n        age  = lifecycle_rule.value\n      }\n      condition {\n      }',
        'An argument named "age" is not expected here',
    ),
    "block at the wrong level": (
        "run.tf",
        '  ingress             = "INGRESS_TRAFFIC_INTERNAL_ONLY"',
        # containers belongs inside template {}, not at the top of the service. (scaling would
        # not do: google_cloud_run_v2_service has a service-level scaling block as well.)
        '  containers {\n    image = "x"\n  }\n  ingress = "INGRESS_TRAFFIC_INTERNAL_ONLY"',
        'Blocks of type "containers" are not expected here',
    ),
    "dangling reference": (
        "pubsub.tf",
        "topic   = google_pubsub_topic.topics[local.dead_letter_topic].id",
        "topic   = google_pubsub_topic.topic[local.dead_letter_topic].id",
        "Reference to undeclared resource",
    ),
}


def copy_module(target: Path) -> Path:
    module = target / "terraform"
    shutil.copytree(
        REPO / "terraform", module,
        ignore=shutil.ignore_patterns(".terraform", ".terraform.lock.hcl", "*.tfstate*"),
    )  # fmt: skip
    return module


def break_module(module: Path, case: str) -> str:
    file_name, old, new, message = BREAKAGES[case]
    path = module / file_name
    text = path.read_text()
    if text.count(old) != 1:
        raise ValueError(f"{case}: expected exactly one {old!r} in {file_name}")
    text = text.replace(old, new)
    path.write_text(text)
    return message


def test_the_unbroken_module_validates(tmp_path: Path) -> None:
    result = run_tfcheck("validate", str(copy_module(tmp_path)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "The configuration is valid" in result.stdout


@pytest.mark.parametrize("case", sorted(BREAKAGES))
def test_a_broken_module_fails_validation(tmp_path: Path, case: str) -> None:
    module = copy_module(tmp_path)
    message = break_module(module, case)
    result = run_tfcheck("validate", str(module))
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode != 0, f"{case}: terraform validate passed:\n{output}"
    assert message in output, f"{case}: expected {message!r} in:\n{output[-3000:]}"
