# Quick start: `make demo` and `make test`. Both build .venv by themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint sysdeps bench clean

# torch==2.13.0 is the CPU wheel; a looser pin would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[all,test]'
	touch $(STAMP)

# Headless Chromium for the viewer test; optional, the test skips without it.
sysdeps:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "note: chromium not installed; the viewer screenshot test will skip"; }

demo: $(STAMP)
	$(PY) -m geopurify demo --out demo_out

test: $(STAMP) sysdeps
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks

bench: $(STAMP)
	$(PY) -m pip install -q -e ".[bench]"
	$(PY) benchmarks/pooling.py
	$(PY) benchmarks/lift.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/scaling.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache .ruff_cache .hypothesis src/geopurify.egg-info
