# Two entry points: `make demo` and `make test`. Both create and reuse .venv.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean-venv

$(BIN)/python:
	$(shell command -v $(PY) >/dev/null 2>&1 && echo $(PY) || echo python3) -m venv $(VENV)

# torch first and explicitly: the CPU wheel on disk; an unpinned torch would pull a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/powdersolve demo --out out/demo

test: $(STAMP)
	$(BIN)/ruff check powdersolve tests benchmarks experiments
	$(BIN)/python -m pytest -n 2 tests

lint: $(STAMP)
	$(BIN)/ruff check powdersolve tests benchmarks experiments

clean-venv:
	rm -rf $(VENV)
