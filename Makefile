# The two commands a newcomer types (see README.md):
#   make book   set up, execute every chapter (automatic profile), build the HTML book
#   make test   set up, unit tests, every notebook through nbval, strict book build (no re-execution)
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

.PHONY: help install book test unit nbval book-check sync clean
help:
	@echo "make book   - install, execute every chapter, build _build/html/index.html"
	@echo "make test   - install, unit tests, nbval over notebooks/, strict book build"
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
	$(PY) -m pytest tests -q -p no:cacheprovider || [ $$? -eq 5 ]

nbval: install
	@if [ -z "$(NOTEBOOKS)" ]; then echo "no notebooks to run"; else \
	  for nb in $(NOTEBOOKS); do \
	    start=$$(date +%s); \
	    $(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
	      -o testpaths= $$nb || exit $$?; \
	    echo "$$nb: $$(( $$(date +%s) - start )) s"; \
	  done; fi

# Warnings are errors; the notebooks are not executed again (they just ran under nbval).
book-check: install
	@mkdir -p _build
	sed -e 's/^\(  *execute_notebooks:\).*/\1 "off"/' -e 's|^\(  *colab_twin:\) *book/_ext|\1 $(CURDIR)/book/_ext|' \
	  -e 's|^\(  *- \)book/references.bib|\1$(CURDIR)/book/references.bib|' _config.yml > _build/_config.noexec.yml
	$(BIN)jupyter-book build . --config _build/_config.noexec.yml --path-output _build/check -W -n --keep-going

test: unit nbval book-check

sync:
	touch book/[0-9][0-9]-*.md  # the Markdown is the source: make it the newer side of each pair
	$(BIN)jupytext --sync book/[0-9][0-9]-*.md

clean:
	rm -rf _build
