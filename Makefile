# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench clean venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/simlab run examples/demo.yaml --out out/demo.json
	@echo "demo results written to out/demo.json (per-event records: out/demo.records.csv)"

lint: $(STAMP)
	$(VENV)/bin/ruff check simlab tests examples
	$(VENV)/bin/ruff format --check simlab tests examples

format: $(STAMP)
	$(VENV)/bin/ruff format simlab tests examples
	$(VENV)/bin/ruff check --fix simlab tests examples

test: lint
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m simlab.bench

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
