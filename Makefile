# The two commands a newcomer types (see README.md):
#   make book   set up, execute every chapter (automatic profile), build the HTML book
#   make test   set up, unit tests, every notebook through nbval, student notebooks, strict book
#               builds with and without solutions (no re-execution)
#
# Set-up: uses the active virtual environment or conda environment if there is one, otherwise
# creates .venv. Exact versions come from ci/constraints.txt (override: make test CONSTRAINTS=).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

CONSTRAINTS ?= ci/constraints.txt
# conda's base environment does not count: installing the course into it would be rude.
ACTIVE_ENV := $(or $(VIRTUAL_ENV),$(if $(filter-out base,$(CONDA_DEFAULT_ENV)),$(CONDA_PREFIX),))
ifeq ($(ACTIVE_ENV),)
  VENV := .venv
  PY := $(VENV)/bin/python
else
  VENV :=
  PY := python
endif
BIN := $(dir $(shell command -v $(PY) 2>/dev/null || echo $(VENV)/bin/python))
PIP_C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
STAMP := $(if $(VENV),$(VENV),_build)/.tlcourse-installed
NOTEBOOKS := $(wildcard notebooks/[0-9][0-9]-*.ipynb)

# Progress bars are for people at a terminal; in the built book and in logs they are noise.
export TQDM_DISABLE ?= 1
export PYTHONHASHSEED ?= 0

.PHONY: help install book book-nosolutions student test unit nbval student-check book-check sync clean
help:
	@echo "make book   - install, execute every chapter, build _build/html/index.html"
	@echo "make test   - install, unit tests, nbval over notebooks/, student notebooks, strict book builds"
	@echo "make book-nosolutions - the executed book without solutions (graded courses)"
	@echo "make student - student notebooks (solutions replaced by stubs) in _build/student"
	@echo "make sync   - regenerate notebooks/*.ipynb from book/*.md (jupytext)"
	@echo "make clean  - remove _build (keeps .venv and the artefact cache)"

$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml $(CONSTRAINTS) $(if $(VENV),$(VENV)/bin/python,)
	@mkdir -p $(dir $@)
	$(PY) -m pip install --quiet --upgrade pip
	@# torch first, alone: with the pin it is the small CPU wheel, not a multi-GB CUDA build
	$(PY) -m pip install --quiet $(PIP_C) torch
	$(PY) -m pip install --quiet $(PIP_C) -e ".[book,test,offline,peers]"
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
	@touch $@

install: $(STAMP)

book: install
	$(BIN)jupyter-book build . --builder html
	@echo "The book: $(abspath _build/html/index.html)"

unit: install
	$(PY) -m pytest tests -q -p no:cacheprovider -m "not notebook" || [ $$? -eq 5 ]

nbval: install
	@if [ -z "$(NOTEBOOKS)" ]; then echo "no notebooks to run"; else \
	  for nb in $(NOTEBOOKS); do \
	    start=$$(date +%s); \
	    $(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
	      -o testpaths= $$nb || exit $$?; \
	    echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	  done; fi

# Derived configs for builds into _build/<name> (paths made absolute, since the config file moves).
ABS_PATHS := -e 's|^\(  *[a-z_]*:\) *book/_ext$$|\1 $(CURDIR)/book/_ext|' \
  -e 's|^\(  *- \)book/references.bib|\1$(CURDIR)/book/references.bib|' \
  -e 's|"book/_static"|"$(CURDIR)/book/_static"|'
NO_EXEC := -e 's/^\(  *execute_notebooks:\).*/\1 "off"/'
SHARED_CACHE := -e 's|^\(  *\)execute_notebooks: cache|&\n\1cache: $(CURDIR)/_build/.jupyter_cache|'
NO_SOLUTIONS := -e 's|^\(  *\)html_show_copyright: true|&\n\1tlcourse_hide_solutions: true|'
STRICT := -W -n --keep-going

# Warnings are errors; the notebooks are not executed again (they just ran under nbval).
book-check: install
	@mkdir -p _build
	sed $(ABS_PATHS) $(NO_EXEC) _config.yml > _build/_config.check.yml
	$(BIN)jupyter-book build . --config _build/_config.check.yml --path-output _build/check $(STRICT)
	sed $(ABS_PATHS) $(NO_EXEC) $(NO_SOLUTIONS) _config.yml > _build/_config.check-nosolutions.yml
	$(BIN)jupyter-book build . --config _build/_config.check-nosolutions.yml --path-output _build/check-nosolutions $(STRICT)
	@! grep -l 'class="solution' _build/check-nosolutions/_build/html/book/*.html || (echo "solutions leaked into the no-solutions build" && false)
	@grep -q 'class="exercise' _build/check-nosolutions/_build/html/book/01-what-is-transfer.html || (echo "the no-solutions build lost its exercises" && false)

# The book for a graded course: executed like `make book` (same execution cache), solutions removed.
book-nosolutions: install
	@mkdir -p _build
	sed $(ABS_PATHS) $(SHARED_CACHE) $(NO_SOLUTIONS) _config.yml > _build/_config.nosolutions.yml
	$(BIN)jupyter-book build . --config _build/_config.nosolutions.yml --path-output _build/nosolutions
	@echo "The book without solutions: $(abspath _build/nosolutions/_build/html/index.html)"

# Student notebooks (solutions replaced by stubs) for every chapter.
student: install
	$(BIN)tlcourse assign --out _build/student --force

# Each chapter's student notebook runs up to its first stub and raises nothing but the stubs' errors.
student-check: install
	$(PY) -m pytest -q -p no:cacheprovider -m notebook tests/test_student_notebooks.py || [ $$? -eq 5 ]

test: unit nbval student-check book-check

sync:
	touch book/[0-9][0-9]-*.md  # the Markdown is the source: make it the newer side of each pair
	$(BIN)jupytext --sync book/[0-9][0-9]-*.md

clean:
	rm -rf _build
