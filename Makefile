# Thin wrappers: each target says what it does. The Python version comes from .python-version, the
# dependencies from uv.lock.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS ?= never
export CLOUDSDK_CORE_DISABLE_PROMPTS := 1
UV_VERSION := 0.13.0
# The team's offline provider-schema check lives beside our checkout, not in it: a clone elsewhere has none.
TFCHECK := ../shared/tools/tfcheck/tfcheck.py
TERRAFORM_STACKS := terraform/gcp/bootstrap terraform/gcp
# uv from PATH when it runs here, else the one pip installs for the Python that .python-version selects.
UV := $(shell uv --version >/dev/null 2>&1 && echo uv || echo python3 -m uv)
RUN := $(UV) run --locked --no-sync

.PHONY: help
help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

.PHONY: uv
uv: ## Install uv if it is missing
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet "uv==$(UV_VERSION)"

.PHONY: install
install: uv ## Install Python and the locked dependencies into .venv
	@$(UV) sync --locked --compile-bytecode --quiet

.PHONY: run
run: install ## Serve the API on http://127.0.0.1:$${PORT:-8080}, with a Firestore emulator of its own
	@$(RUN) python -m dev.run

.PHONY: lint
lint: install ## ruff lint and format check
	$(RUN) ruff check .
	$(RUN) ruff format --check .

.PHONY: types
types: install ## mypy --strict over the app, the dev tools and the tests
	$(RUN) mypy

.PHONY: pytest
pytest: install ## The test suite with branch coverage (starts its own Firestore emulator), without the rehearsal
	$(RUN) pytest --cov --cov-report=term -m "not rehearsal"

.PHONY: rehearsal
rehearsal: install ## Rehearse every rollout scenario against local stand-ins of Cloud Run: a table, build/rehearsal/report.json
	$(RUN) python -m rehearsal

.PHONY: test
test: lint types container-checks pipeline-checks infra-checks pytest rehearsal ## Everything CI runs

.PHONY: test-app
test-app: lint types ## What Cloud Build runs: lint, types, and every test that needs neither Terraform nor the team's tools
	$(RUN) pytest --cov --cov-report=term -m "not rehearsal"

.PHONY: smoke
smoke: install ## The smoke suite the rollout runs, against any running service: make smoke BASE_URL=http://127.0.0.1:8080
	@test -n "$(BASE_URL)" || { echo "usage: make smoke BASE_URL=<the service's URL>" >&2; exit 2; }
	$(RUN) python -m deploy.smoke "$(BASE_URL)"

.PHONY: bench
bench: install ## Benchmark the service against a straightforward baseline on the emulator
	$(RUN) python -m dev.bench

.PHONY: diagram
diagram: install ## Render docs/*.mmd to SVG with the pinned mermaid-cli and the system Chromium (/usr/bin/chromium)
	$(RUN) python docs/tools/render.py

.PHONY: container-checks
container-checks: uv ## checkov on the Dockerfile, the compose file against the Compose specification
	$(UV) tool run --quiet --from checkov==3.3.30 checkov --skip-download --framework dockerfile -f Dockerfile --quiet --compact
	$(UV) tool run --quiet --from check-jsonschema==0.39.0 check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml

.PHONY: pipeline-checks
pipeline-checks: uv ## Both Cloud Build configs against Cloud Build's schema
	$(UV) tool run --quiet --from check-jsonschema==0.39.0 check-jsonschema --builtin-schema vendor.cloudbuild cloudbuild.yaml cloudbuild-rollout.yaml cloudbuild-pr.yaml

.PHONY: infra-checks
infra-checks: install tfcheck ## terraform fmt, tfcheck when it is beside the repository, and checkov on terraform/gcp
	terraform fmt -check -recursive terraform
	$(UV) tool run --quiet --from checkov==3.3.30 checkov --skip-download -d terraform/gcp --framework terraform --quiet --compact

.PHONY: tfcheck
tfcheck: install ## The team's offline provider-schema check of both stacks, or one line saying why it was skipped
	@if [ -f "$(TFCHECK)" ]; then \
		for stack in $(TERRAFORM_STACKS); do $(RUN) python "$(TFCHECK)" "$$stack" || exit 1; done; \
	else \
		echo "tfcheck skipped: $(TFCHECK) is not beside this clone (the team's offline schema check); make validate checks against the real provider"; \
	fi

.PHONY: validate
validate: ## terraform init -backend=false and validate for both stacks; needs to download the google provider
	@for stack in $(TERRAFORM_STACKS); do \
		lock=$$([ -f "$$stack/.terraform.lock.hcl" ] && echo -lockfile=readonly); \
		terraform -chdir="$$stack" init -backend=false -input=false $$lock && terraform -chdir="$$stack" validate || exit 1; \
	done
