# Developer entry points. `make run` and `make test` are the two commands README promises.
SHELL := /bin/bash
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
CHART_JS := webapp/static/vendor/chart.umd.min.js

.PHONY: run test install bench bench-scale clean-data help

help:
	@echo "make run    - install, start the simulator, load the demo through Dagster, serve portal and Dagster UI"
	@echo "make test   - the whole test suite"
	@echo "make bench  - benchmarks"
	@echo "make bench-scale - the pipeline over 10,000 supplies x 13 months (~72 min, ~15 GB peak)"

$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --all-groups --quiet
	@touch $@

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --silent

$(CHART_JS): node_modules/.package-lock.json
	mkdir -p $(dir $(CHART_JS))
	cp node_modules/chart.js/dist/chart.umd.min.js $(CHART_JS)

install: $(VENV)/.synced $(CHART_JS)

run:
	@export AMI_RUN_STARTED=$$(date +%s); $(MAKE) --no-print-directory install && exec $(VENV)/bin/ami-portal run

test: install
	$(VENV)/bin/python -m pytest

bench: install
	$(VENV)/bin/python -m benchmarks

bench-scale: install  # the pipeline over 10,000 supplies x 13 months alone: ~72 min and a ~15 GB peak on 2 cores
	BENCH_SUPPLIES=10000 BENCH_SCALE_ONLY=1 $(VENV)/bin/python -m benchmarks pipelines

clean-data:
	rm -rf var
