# The book's commands. `make book` and `make test` are the two the README starts with.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
JB     := $(VENV)/bin/jupyter-book
STAMP  := $(VENV)/.installed

.PHONY: book test unit unit-oldest nbval build-strict browser lab bench clean help

help:
	@echo "make book   - create .venv if needed, execute every chapter, build _build/html"
	@echo "make test   - unit tests, nbval on every chapter, strict book build, browser check"
	@echo "make unit-oldest - the unit tests again, with the oldest NumPy and sympy claimed (.venv-oldest)"
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

# The unit tests and doctests a second time, in their own environment with the oldest NumPy and
# sympy that pyproject.toml claims (requirements-oldest.txt). torch, the tests' oracle, is installed
# without its dependencies (see requirements-oldest-torch.txt). tests/test_book.py and
# tests/test_rules.py are left out: they check the book's files and pages, not the package, and need
# the book's environment (nbformat, nbclient, a Jupyter kernel). CI runs this after
# `make test`.
OLDEST       := .venv-oldest
OLDEST_PY    := $(OLDEST)/bin/python
OLDEST_STAMP := $(OLDEST)/.installed

$(OLDEST_STAMP): requirements-oldest.txt requirements-oldest-torch.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	test -x $(OLDEST_PY) || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST_PY) -m pip install --disable-pip-version-check -q -r requirements-oldest.txt
	$(OLDEST_PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-oldest-torch.txt
	touch $(OLDEST_STAMP)

unit-oldest: $(OLDEST_STAMP)
	$(OLDEST_PY) -c 'import numpy, sympy; print("numpy", numpy.__version__, "sympy", sympy.__version__)'
	$(OLDEST_PY) -m pytest -n 2 --dist loadfile --doctest-modules src/matgrad tests \
		--ignore=tests/browser --ignore=tests/test_book.py --ignore=tests/test_rules.py

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
