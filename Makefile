# Two commands do all the set-up on a fresh machine:
#   make repro   create .venv if missing, then `dvc repro` on the embedded synthetic data
#   make test    create .venv if missing, then the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: repro test lint bench lock clean-venv compare mlflow push pull

# Exactly the versions in requirements.lock (what CI tested), then the project itself.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $(STAMP)

repro: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# Two pytest-xdist workers, a test module each at a time (module fixtures are built once), handed
# out in the order tests/conftest.py sets: the shared pipeline run is built by one worker while
# the other runs the modules that do not read it.
TEST_WORKERS ?= 2
test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

# Experiments side by side, one table per headline metric (`dvc exp show` has a column per
# method and metric); `make compare ARGS="-- -A"` passes options to `dvc exp show`.
compare: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m postergenre.apps.compare $(ARGS)

# dvc push / dvc pull, after asking the remote once whether it can be used (DVC itself retries
# an unreachable endpoint for many minutes).
push pull: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m postergenre.apps.remote
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc $@

# The MLflow UI on this repository's runs; prints the address of the runs table.
mlflow: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m postergenre.apps.mlflow_ui $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/resize.py

# Re-resolve every dependency from pyproject.toml in a throw-away venv and pin what it installed.
lock:
	rm -rf .lockvenv
	$(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet -e '.[dev]'
	.lockvenv/bin/python tools/lock.py .lockvenv/bin/python > requirements.lock
	rm -rf .lockvenv

clean-venv:
	rm -rf $(VENV)
