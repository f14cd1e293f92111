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

# The default question: a WebSocket service behind a 60 s-idle load balancer, users on home
# Wi-Fi and LTE (examples/sweeps/default-question.yaml): sweep, report, answer.
DEMO := default-question
DEMO_QUESTION := --max-detection 60s --max-false-disconnects 2/conn-day --behind aws-alb

demo: $(STAMP)
	rm -f out/$(DEMO).csv out/$(DEMO).summary.csv out/$(DEMO).meta.json
	$(VENV)/bin/simlab sweep examples/sweeps/$(DEMO).yaml --out out/$(DEMO).csv
	$(VENV)/bin/simlab report out/$(DEMO).csv --out reports/$(DEMO).html $(DEMO_QUESTION)
	$(VENV)/bin/simlab choose out/$(DEMO).csv $(DEMO_QUESTION) || [ $$? -eq 1 ]

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
