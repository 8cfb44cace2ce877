"""Check a plan (``terraform show -json``) against the provider's validators and the API rules.

Usage: ``python tools/tfcheck/check_plan.py PLAN.json [PLAN.json ...]``. Prints one line per
broken rule, ``[rule] address: message``, and exits 1 if there is any; ``scripts/tfcheck.sh plan``
runs it on each environment's plan, so ``make terraform-check`` fails with the rule's name.

The provider validators (provider_rules.py) already ran inside ``terraform plan`` through the
stand-in's ValidateResourceConfig; they run again here on the planned values, where every
variable is known. The API rules (api_rules.py) only run here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import api_rules  # noqa: E402
import provider_rules  # noqa: E402


def check(plan: dict[str, Any]) -> list[provider_rules.Violation]:
    found: list[provider_rules.Violation] = []
    for resource in api_rules.resources(plan):
        found.extend(provider_rules.validate(resource["type"], resource["address"], resource["values"]))
    found.extend(api_rules.check(plan))
    return found


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: check_plan.py PLAN.json [PLAN.json ...]", file=sys.stderr)
        return 2
    broken = 0
    for name in argv:
        violations = check(json.loads(Path(name).read_text()))
        for violation in violations:
            print(f"{Path(name).name}: {violation}")
        broken += len(violations)
        if not violations:
            print(f"{Path(name).name}: every provider and API rule holds")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
