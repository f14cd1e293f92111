# The two commands a newcomer needs: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint format bench clean venv lab

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The default question: a WebSocket service behind a 60 s-idle load balancer (an AWS ALB), users
# on home Wi-Fi and LTE. `simlab ask` picks the settings to try, sweeps them, and writes the
# sweep file, its CSV and the report into out/demo/ (emptied first: it is the demo's own).
DEMO_DIR := out/demo
DEMO_QUESTION := --behind aws-alb --network home-wifi --network lte --max-detection 60s \
	--max-false-disconnects 2/conn-day

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(VENV)/bin/simlab ask $(DEMO_QUESTION) --out-dir $(DEMO_DIR) || [ $$? -eq 1 ]

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

# JupyterLab on the notebooks (installs the notebooks extra: JupyterLab, ipywidgets).
lab: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,notebooks]'
	$(VENV)/bin/jupyter lab notebooks/

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
