# Two commands on a fresh clone:  `make demo` (the whole pipeline on synthetic data)
# and `make test` (the test suite). Both create .venv with the pinned requirements
# on first use and reuse it afterwards.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.requirements-installed

.PHONY: demo test bench venv clean-demo

# ELAN's EAF 3.0 schema, which the tests validate every written .eaf against: it ships in the
# pympi-ling 1.71 source distribution, fetched from the package registry once, as pip fetches packages.
EAF_XSD := $(VENV)/eaf-schema/EAFv3.0.xsd

venv: $(STAMP)

$(EAF_XSD): | $(STAMP)
	rm -rf $(VENV)/eaf-schema.partial && mkdir -p $(VENV)/eaf-schema.partial
	$(PY) -m pip download --quiet --disable-pip-version-check --no-binary :all: --no-deps pympi-ling==1.71 \
		-d $(VENV)/eaf-schema.partial
	$(PY) -c "import sys, tarfile; t = tarfile.open(sys.argv[1]); \
		open(sys.argv[2], 'wb').write(t.extractfile('pympi_ling-1.71/test/EAFv3.0.xsd').read())" \
		$(VENV)/eaf-schema.partial/pympi_ling-1.71.tar.gz $(VENV)/eaf-schema.partial/EAFv3.0.xsd
	rm -rf $(VENV)/eaf-schema && mkdir -p $(VENV)/eaf-schema
	mv $(VENV)/eaf-schema.partial/EAFv3.0.xsd $@ && rm -rf $(VENV)/eaf-schema.partial

$(STAMP): requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	cp requirements.txt $(STAMP)

test: $(STAMP) $(EAF_XSD)
	$(PY) -m ruff check .
	SIGNSPOT_EAF_SCHEMA=$(EAF_XSD) $(PY) -m pytest -q

demo: $(STAMP)
	$(PY) scripts/demo.py --out demo_out

bench: $(STAMP)
	$(PY) bench/run_all.py --out bench_out

clean-demo:
	rm -rf demo_out
