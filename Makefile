# `make demo` and `make test` each build .venv (pinned dependencies from requirements/lock.txt,
# torch==2.13.0) and then run. `make bench-*` run the benchmarks (separate from the tests).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo lint test bench-overhead bench-lr bench-uci bench-kl clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements/lock.txt
	$(BIN)/python -m pip install -q --no-deps -e ".[dev,bench]"
	$(BIN)/python -m pip check
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hidlr demo

# Lint and formatting (rules in pyproject.toml): `ruff format src tests examples` applies the format.
lint: $(STAMP)
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples

test: lint
	$(BIN)/python -m pytest -n 2 tests

bench-overhead: $(STAMP)
	$(BIN)/hidlr bench overhead

bench-lr: $(STAMP)
	$(BIN)/hidlr bench lr

bench-uci: $(STAMP)
	$(BIN)/hidlr bench uci

bench-kl: $(STAMP)
	$(BIN)/hidlr bench kl

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
