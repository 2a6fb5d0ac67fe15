# Two commands do all the set-up on a fresh machine:
#   make repro   create .venv if missing, then `dvc repro` on the embedded synthetic data
#   make test    create .venv if missing, then the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# What the pipeline needs (requirements.lock), and that plus the test and style tools
# (requirements-dev.lock): both pinned with hashes by `make lock`. pip shows each package as it
# goes (it takes minutes: torch alone is some 900 MB).
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PIP_INSTALL = $(BIN)/pip install --progress-bar on --require-hashes --no-deps -r
CHROMIUM_INSTALL := sudo apt-get install -y --no-install-recommends chromium

.PHONY: repro test check lint typecheck bench lock plots clean-venv compare mlflow push pull

$(RUN_STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP) requirements-dev.lock
	$(PIP_INSTALL) requirements-dev.lock
	$(BIN)/pip check
	touch $(DEV_STAMP)

repro: $(RUN_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# Two pytest-xdist workers, a test module each at a time (module fixtures are built once), handed
# out in the order tests/conftest.py sets: the shared pipeline run is built by one worker while
# the other runs the modules that do not read it.
# The browser tests drive Debian's chromium: without it make test stops here, naming the command.
TEST_WORKERS ?= 2
test: $(DEV_STAMP)
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || \
	  { echo "make test: the browser tests need Debian's chromium: $(CHROMIUM_INSTALL)" >&2; exit 2; }
	PATH="$(CURDIR)/$(BIN):$$PATH" POSTERGENRE_BROWSER_TESTS=required \
	  $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

# Experiments side by side, one table per headline metric (`dvc exp show` has a column per
# method and metric); `make compare ARGS="-- -A"` passes options to `dvc exp show`.
compare: $(RUN_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m postergenre.apps.compare $(ARGS)

# dvc push / dvc pull, after asking the remote once whether it can be used (DVC itself retries
# an unreachable endpoint for many minutes).
push pull: $(RUN_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m postergenre.apps.remote
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc $@

# The MLflow UI on this repository's runs; prints the address of the runs table.
mlflow: $(RUN_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m postergenre.apps.mlflow_ui $(ARGS)

# What .ci/run checks before the tests: lint, formatting, types (pyproject's [tool.mypy]).
check: lint typecheck

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

# `dvc plots show` as a page that draws offline: dvc_plots/index.html, the Vega libraries inline.
plots: $(RUN_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m postergenre.apps.plots $(ARGS)

bench: $(DEV_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python bench/resize.py

# Re-resolve every dependency from pyproject.toml with pip-tools (in a throw-away venv) and pin
# each at its version with its files' hashes; tools/lock.py marks the CUDA-only packages.
lock:
	rm -rf .lockvenv
	$(PYTHON) -m venv .lockvenv
	.lockvenv/bin/pip install --quiet pip-tools==7.6.2
	.lockvenv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-header --no-emit-index-url --no-emit-find-links -o .lockvenv/run.txt pyproject.toml
	.lockvenv/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
	  --no-header --no-emit-index-url --no-emit-find-links --extra dev -o .lockvenv/dev.txt pyproject.toml
	$(PYTHON) tools/lock.py .lockvenv/run.txt > requirements.lock
	$(PYTHON) tools/lock.py .lockvenv/dev.txt > requirements-dev.lock
	rm -rf .lockvenv

clean-venv:
	rm -rf $(VENV)
