# sopbot: two commands on a fresh machine.
#   make run   create .venv, install, start the demo (SQLite + built-in simulator)
#   make test  install dev tools, run lint, types, import contracts and the whole test suite
#              (with a throwaway PostgreSQL started by scripts/pg-test.sh)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: run test install install-dev lint typecheck contracts pytest format clean bench audit

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

run: install
	$(BIN)/sopbot demo

lint: install-dev
	$(BIN)/ruff check bot handlers sop tests benchmarks
	$(BIN)/ruff format --check bot handlers sop tests benchmarks

typecheck: install-dev
	$(BIN)/mypy

contracts: install-dev
	$(BIN)/lint-imports

pytest: install-dev
	scripts/run-tests.sh

test: lint typecheck contracts pytest

# Known vulnerabilities in the installed environment (pip-audit, PyPI's advisory data). Not part
# of `make test`: it needs the network. Exit 1 with a list = vulnerable packages; exit 2 = the
# vulnerability service could not be reached, so nothing was audited.
# `make audit AUDIT_FLAGS=--dry-run` only collects the dependency list (no network).
AUDIT_SERVICE_URL ?= https://pypi.org/pypi/pip/json
AUDIT_FLAGS ?=
audit: install-dev
	@$(BIN)/python -c "import urllib.request as u; u.urlopen('$(AUDIT_SERVICE_URL)', timeout=15)" \
		2>/dev/null || case " $(AUDIT_FLAGS) " in *" --dry-run "*) ;; *) \
		echo "make audit: cannot reach the vulnerability service ($(AUDIT_SERVICE_URL));" \
			"nothing was audited" >&2; exit 2;; esac
	$(BIN)/pip-audit --progress-spinner off --skip-editable --desc on $(AUDIT_FLAGS)

format: install-dev
	$(BIN)/ruff check --fix bot handlers sop tests benchmarks
	$(BIN)/ruff format bot handlers sop tests benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build dist
