# Thin targets: each calls the CLI or pytest. uv is installed from PyPI when missing.
UV := python3 -m uv
PYTEST_ARGS ?=

.PHONY: help install run run-emulators test test-fast bench bench-quick reliability report-screenshots science science-quick checkov terraform-check fmt clean

help:
	@echo "make run            the whole stack on the embedded default, with an example night"
	@echo "make run-emulators  the same on fake-gcs-server + the Pub/Sub and Firestore emulators"
	@echo "make test           install and run the whole test suite"
	@echo "make bench          benchmarks of docs/architecture.md's targets -> BENCHMARKS.md"
	@echo "make reliability    fault-injection scenarios, idle and beside 2 CPU hogs -> RELIABILITY.md"
	@echo "make report-screenshots  sunrise report of data/ -> report/, PNGs of it -> docs/img/ (needs chromium)"
	@echo "make terraform-check  terraform validate + plan (dev, prod) offline, plan tests, checkov"
	@echo "make science        robustness of detectors and models on shifted synthetic nights -> SCIENCE.md"

install:
	@python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.9"
	$(UV) sync --frozen --quiet --compile-bytecode

run: install
	$(UV) run sunrise run

run-emulators: install
	$(UV) run sunrise run --emulators

test: install
	$(UV) run pytest $(PYTEST_ARGS)

test-fast: install
	$(UV) run pytest -m "not slow and not emulators" $(PYTEST_ARGS)

bench: install
	$(UV) run python -m benchmarks.run

bench-quick: install
	$(UV) run python -m benchmarks.run --quick --output .bench/BENCHMARKS.quick.md

reliability: install
	$(UV) run python -m reliability.run

report-screenshots: install
	$(UV) run sunrise report --out report/ --screenshots docs/img/

science: install
	$(UV) run python -m science.run --out SCIENCE.md

science-quick: install
	$(UV) run python -m science.run --quick --out .science/SCIENCE.quick.md

checkov:
	bash scripts/checkov.sh

# Real Terraform, offline, against a stand-in google provider that serves the published schema
# (tools/tfcheck): fmt, init, validate, plan dev + prod, plan-JSON tests, checkov, workflow audit.
terraform-check: install
	terraform fmt -check -recursive -diff terraform
	bash scripts/tfcheck.sh plan .tfcheck/plans
	SUNRISE_TFCHECK_PLANS=$(CURDIR)/.tfcheck/plans SUNRISE_CHECKOV=1 $(UV) run pytest tests/terraform -q $(PYTEST_ARGS)

fmt:
	terraform fmt -recursive terraform

clean:
	rm -rf data .bench .pytest_cache
