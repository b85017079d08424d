# Quick start: `make demo` (the whole AC-SAR pipeline on the embedded synthetic data)
#              `make test` (the test suite). Both create .venv from requirements.txt if missing.
PY ?= python3
VENV ?= .venv
PYTHON := $(VENV)/bin/python
# The stamp names the hash of requirements.txt (not its mtime): a fresh clone reuses a VENV= that
# already has these requirements, and a changed requirements.txt installs again.
REQ_HASH := $(shell $(PY) -c "import hashlib; print(hashlib.sha256(open('requirements.txt', 'rb').read()).hexdigest()[:16])")
STAMP := $(VENV)/.requirements-$(REQ_HASH)

.PHONY: venv test demo demo-long demo-quick bench

$(STAMP):
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

# The same pipeline with six times the pretraining (120 epochs, lr x0.1 at 100, instead of 20 and 15), in
# its own work dir: under an hour on 2 CPU cores (what it changes: bench/EXPERIMENTS.md §1.8).
demo-long: $(STAMP)
	$(PYTHON) bench/demo.py --work-dir work_dir/long --pretrain-set epochs=120 --pretrain-set 'scheduler.milestones=[100]'

demo-quick: $(STAMP)
	$(PYTHON) bench/demo.py --quick

bench: $(STAMP)
	$(PYTHON) bench/run_all.py --quick
