# Quick start: `make demo` (the whole AC-SAR pipeline on the embedded synthetic data)
#              `make test` (the test suite). Both create .venv from requirements.txt if missing.
PY ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: venv test demo demo-quick bench clean-venv

$(STAMP): requirements.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	# one resolve for everything (see README: torch and torchvision must come together)
	$(PYTHON) -m pip install -q -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PYTHON) -m pytest -q tests

demo: $(STAMP)
	$(PYTHON) bench/demo.py

demo-quick: $(STAMP)
	$(PYTHON) bench/demo.py --quick

bench: $(STAMP)
	$(PYTHON) bench/run_all.py --quick
