# qmsnb: two commands on a fresh machine.
#   make demo   set everything up, build the demo data, run the monthly batch
#   make test   set everything up and run the test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PERIOD ?= 2026-10
# The demo's month with a flawed export (the gate rejects it: exit code 3).
FLAWED ?= 2026-09
# pytest-xdist workers for the tests (0: none). Whole files go to one worker, so a
# module's one batch run (a module-scoped fixture) is not run on both.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

.PHONY: demo test test-fast lint benchmark system-deps clean-outputs help

help:
	@echo "make demo   - install, build the demo data and run the monthly batch for $(PERIOD)"
	@echo "make test   - install and run the tests (browser tests use Debian's chromium)"
	@echo "make lint   - ruff"
	@echo "make benchmark - run the benchmarks (see benchmarks/README.md)"

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (qmsnb)" >/dev/null
	mkdir -p $(VENV)/share/jupyter/lab/settings
	cp src/qmsnb/resources/jupyterlab-overrides.json $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $(STAMP)

# Debian packages the browser tests need (chromium) and CJK fonts for readable
# screenshots; installed only when missing, and only where we may (root).
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi 'Noto Sans CJK'; then \
	  if [ "$$(id -u)" = "0" ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; \
	  else \
	    echo "chromium (and fonts-noto-cjk) are needed for the browser tests: sudo apt-get install chromium fonts-noto-cjk"; \
	  fi; \
	fi

demo: $(STAMP)
	$(BIN)/qmsnb demo
	$(BIN)/qmsnb run --period $(FLAWED) || test $$? -eq 3
	$(BIN)/qmsnb run --period $(PERIOD)

test: $(STAMP) system-deps
	$(PYTEST)

test-fast: $(STAMP)
	$(PYTEST) -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

benchmark: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean-outputs:
	@echo "Outputs are never deleted by make; remove outputs/ yourself if you mean it."
