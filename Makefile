# portail.https — two commands matter: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV  := .venv
BIN   := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo demo-clean test test-quick deps rig rig-stop lint sanity unit integration changelog bench clean

demo:
	@echo "==== preparing: Debian packages, .venv, the local CA and DNS (a minute or two on a fresh machine)"
	@$(MAKE) --no-print-directory -s deps rig >/dev/null
	@bash demo/run.sh

demo-clean:
	@$(BIN)/python demo/demo.py down

test: deps rig
	@bash tests/run-all.sh $(PYTEST_ARGS)

# For developers: the same steps as `make test`, without the integration tests marked slow.
test-quick: deps rig
	@bash tests/run-all.sh --quick $(PYTEST_ARGS)

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
