# Two commands: `make demo` (the flagship job) and `make test` (the checks, then the suite). Both build .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SHARED_DATA := $(abspath ../shared/data)
export POLYSKILL_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),$(HOME)/.cache/polyskill)

# The demo: ProtoNet on Omniglot (Vinyals split), ~8 minutes of training on 2 CPU cores, then 1000 test episodes.
DEMO_OUT ?= runs/demo
DEMO_SET ?= --set train.steps=4000 --set train.lr_step=1000

# What `ruff` lints and formats; `mypy` checks the package (configured in pyproject.toml, as are the import layers).
LINT_PATHS := polyskill tests benchmarks scripts

.PHONY: install browser demo lint test bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[test,all]"
	touch $@

demo: install
	rm -rf $(DEMO_OUT)
	$(BIN)/polyskill train omniglot-protonet $(DEMO_SET) --out $(DEMO_OUT)

# The four checks, in order: import layers, lint, format, types; each stops `make` at its first failure.
lint: install
	$(BIN)/lint-imports
	$(BIN)/ruff check $(LINT_PATHS)
	$(BIN)/ruff format --check $(LINT_PATHS)
	$(BIN)/mypy polyskill

# Debian's Chromium and ChromeDriver for the test of `polyskill serve`'s page, installed where apt-get can (else
# the script says why and that test is skipped).
browser:
	bash scripts/install_browser.sh

# The checks, then the suite (pytest's exit code 5, no test collected, fails it too), on PYTEST_WORKERS processes
# (pytest-xdist), each running whole test files.
PYTEST_WORKERS ?= 2
test: lint browser
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder tests

bench: install
	$(BIN)/python benchmarks/episode_sampling.py

clean:
	rm -rf $(VENV) runs build *.egg-info .mypy_cache .ruff_cache .import_linter_cache
