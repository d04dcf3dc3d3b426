# The book's commands. `make book` and `make test` are the two the README starts with.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
JB     := $(VENV)/bin/jupyter-book
STAMP  := $(VENV)/.installed

.PHONY: book test unit nbval build-strict browser lab bench clean help

help:
	@echo "make book   - create .venv if needed, execute every chapter, build _build/html"
	@echo "make test   - unit tests, nbval on every chapter, strict book build, browser check"
	@echo "make lab    - open the chapters in JupyterLab with matgrad importable"
	@echo "make bench  - run every benchmark script in benchmarks/"

# The virtual environment, rebuilt when the pinned requirements or the package metadata change.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	touch $(STAMP)

book: $(STAMP)
	$(JB) build --all .
	@echo "Open _build/html/index.html"

test: unit nbval build-strict browser

unit: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile --doctest-modules src/matgrad tests --ignore=tests/browser

nbval: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg book

build-strict: $(STAMP)
	$(JB) build --all . -W -n --keep-going

browser: $(STAMP)
	$(PY) -m pytest tests/browser -rs

# Jupyter refuses to start as root unless told; containers often run as root.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS) book

bench: $(STAMP)
	@for script in benchmarks/bench_*.py; do \
		echo "=== $$script"; $(PY) $$script || exit 1; \
	done

clean:
	rm -rf _build
