# portail.https — two commands matter: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test deps rig rig-stop lint sanity unit integration changelog bench clean

demo: deps rig
	bash demo/run.sh

test: deps rig
	@bash tests/run-all.sh $(PYTEST_ARGS)

deps:
	@bash tests/install-deps.sh

rig: deps
	@$(BIN)/python tests/rig/rig.py start

rig-stop:
	@$(BIN)/python tests/rig/rig.py stop

lint: deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint --profile production

sanity: deps
	bash tests/sanity/run.sh

unit: deps
	$(BIN)/pytest -q tests/unit

integration: deps rig
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

changelog: deps
	$(BIN)/antsibull-changelog lint

clean: rig-stop
	rm -rf build
