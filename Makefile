# Two commands on a fresh clone:  `make demo` (the whole pipeline on synthetic data)
# and `make test` (the test suite). Both create .venv with the pinned requirements
# on first use and reuse it afterwards.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements-installed

.PHONY: demo test bench venv clean-demo

venv: $(STAMP)

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	cp requirements.txt $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) scripts/demo.py --out demo_out

bench: $(STAMP)
	$(PY) bench/run_all.py --out bench_out

clean-demo:
	rm -rf demo_out
