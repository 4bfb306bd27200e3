# The two commands a newcomer types (see README.md):
#   make book   set up, execute every chapter (automatic profile), build the HTML book
#   make test   set up, lint (format, 100 columns), unit tests, chapter 5's gpu profile shrunk (make smoke: every
#               chapter's), every notebook through nbval (each chapter executed once; its
#               outputs go to the book's jupyter-cache), the student notebooks' exercise sections,
#               strict book builds with and without solutions from those outputs (no re-execution)
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
# On Linux, PyPI's torch is a CUDA build (GBs): torch comes from PyTorch's CPU index instead, unless
# `make book TORCH=cuda` (the pin in ci/constraints.txt is that CPU wheel; use CONSTRAINTS= as well
# for the newest CUDA build). macOS and Windows wheels on PyPI are CPU builds already.
TORCH ?= cpu
TORCH_INDEX ?= $(if $(and $(filter cpu,$(TORCH)),$(filter Linux,$(shell uname -s))),--extra-index-url https://download.pytorch.org/whl/cpu,)
# In an active conda environment (not base) conda owns the packages (environment.yml): pip installs
# the course package alone (--no-deps), then ci/check_requirements.py says what is missing, if anything.
CONDA_ENV := $(if $(VIRTUAL_ENV),,$(if $(CONDA_PREFIX),$(filter-out base,$(CONDA_DEFAULT_ENV)),))
PIP_C := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
STAMP := $(if $(VENV),$(VENV),_build)/.tlcourse-installed
NOTEBOOKS := $(wildcard notebooks/[0-9][0-9]-*.ipynb)

# Progress bars are for people at a terminal; in the built book and in logs they are noise.
export TQDM_DISABLE ?= 1
export PYTHONHASHSEED ?= 0

.PHONY: help install book book-nosolutions student test lint unit smoke nbval student-check book-check sync clean data-bundle
help:
	@echo "make book   - install, execute every chapter, build _build/html/index.html"
	@echo "make test   - install, unit tests, nbval over notebooks/, student notebooks, strict book builds"
	@echo "make book-nosolutions - the executed book without solutions (graded courses)"
	@echo "make student - student notebooks (solutions replaced by stubs) in _build/student"
	@echo "make sync   - regenerate notebooks/*.ipynb from book/*.md (jupytext)"
	@echo "make data-bundle DATA=../shared/data OUT=_build/data-bundle - the course data bundle (.tar.gz + registry.txt)"
	@echo "make clean  - remove _build (keeps .venv and the artefact cache)"

$(VENV)/bin/python:
	python3 -m venv $(VENV)

$(STAMP): pyproject.toml $(CONSTRAINTS) $(if $(VENV),$(VENV)/bin/python,)
	@mkdir -p $(dir $@)
ifneq ($(CONDA_ENV),)
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) ci/check_requirements.py book test offline peers
else
	$(PY) -m pip install --quiet --upgrade pip
	@# torch first, alone (its dependencies come with the next line): the CPU wheel, not a CUDA build
	$(PY) -m pip install --quiet --no-compile --no-deps $(PIP_C) $(TORCH_INDEX) torch
	$(PY) -m pip install --quiet --no-compile $(PIP_C) -e ".[book,test,offline,peers]"
	@# pip would byte-compile the ~20,000 modules of the dependencies on one core (a minute or two);
	@# compileall uses every core. (Best effort: a file that does not compile is simply not cached.)
	$(PY) -m compileall -q -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >/dev/null || true
endif
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
	@touch $@

install: $(STAMP)

book: install
	TLCOURSE_STRICT_CHECKS=1 $(BIN)jupyter-book build . --builder html
	@echo "The book: $(abspath _build/html/index.html)"

# Each phase of `make test` prints its wall time (CI's time split).
TIMED = start=$$(date +%s); trap 'echo "$@: $$(( $$(date +%s) - start )) s"' EXIT;

# The package's code is shown in the book: it stays formatted and within the page's 100 columns.
lint: install
	$(BIN)ruff format --check tlcourse
	$(BIN)ruff check tlcourse
	$(BIN)actionlint  # .github/workflows/*.yml

# The unit tests and the student notebooks are many small jobs, mostly single-threaded Python: they
# run in JOBS test processes (pytest-xdist), each with one torch thread, not one process with JOBS
# threads (two torch jobs that each want every core make both several times slower). nbval runs the
# chapters one at a time with every core: their numbers depend on the thread count.
JOBS ?= 2
XDIST = OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -n $(JOBS)
unit: install
	@$(TIMED) $(XDIST) --dist loadfile tests -q -p no:cacheprovider -m "not notebook and not book and not smoke" || [ $$? -eq 5 ]

# Every chapter's gpu profile with its smoke sizes (TLCOURSE_SMOKE=1: a few steps, the same code
# paths) on the CPU, two notebooks at a time with a thread each: no gpu-only branch waits for a GPU
# to crash. All eleven take about 14 minutes on 2 cores, more than CI's time allows: `make test`
# runs chapter 5's alone (SMOKE_ONLY, a pytest -k expression), the one gpu profile that swaps the
# pretrained model; `make smoke` runs every chapter, `make test SMOKE_ONLY=` too.
SMOKE_ONLY ?=
smoke: install
	@$(TIMED) $(XDIST) --dist load tests/test_smoke.py -q -rP -p no:cacheprovider -m smoke $(if $(SMOKE_ONLY),-k "$(SMOKE_ONLY)",)

# Each chapter runs once, here; conftest.py stores every notebook that passed in the jupyter-cache
# that the book builds read, so `make book-check` and `make book` reuse these outputs.
NB_CACHE := $(CURDIR)/_build/.jupyter_cache
nbval: install
	@mkdir -p _build
	@# One pytest session, the notebooks one after another (each in its own kernel), stopping at the
	@# first failure (-x); conftest.py prints each notebook's time as it finishes.
	@if [ -z "$(NOTEBOOKS)" ]; then echo "no notebooks to run"; else \
	  begin=$$(date +%s); \
	  TLCOURSE_STRICT_CHECKS=1 TLCOURSE_NB_CACHE=$(NB_CACHE) $(PY) -m pytest -q -x -p no:cacheprovider --nbval-lax --nbval-current-env --nbval-cell-timeout=900 \
	    -o testpaths= $(NOTEBOOKS); \
	  echo "nbval: $$(( $$(date +%s) - begin )) s"; fi

# Derived configs for builds into _build/<name> (paths made absolute, since the config file moves).
ABS_PATHS := -e 's|^\(  *[a-z_]*:\) *book/_ext$$|\1 $(CURDIR)/book/_ext|' \
  -e 's|^\(  *- \)book/references.bib|\1$(CURDIR)/book/references.bib|' \
  -e 's|"book/_static"|"$(CURDIR)/book/_static"|'
SHARED_CACHE := -e 's|^\(  *\)execute_notebooks: cache|&\n\1cache: $(NB_CACHE)|'
# The no-solutions book (book/_ext/no_solutions.py): no solutions, no listing an exercise asks for,
# no page source or executed notebook; its buttons give the student notebooks, shipped from the
# folder $(1) (tlcourse assign); the build fails if a solution line is in any of its files.
NO_SOLUTIONS = -e 's|^\(  *\)html_show_copyright: true|&\n\1tlcourse_hide_solutions: true\n\1html_copy_source: false\n\1html_show_sourcelink: false\n\1tlcourse_student_notebooks: $(1)|'
SUBSET := -e 's|^\(  *\)html_show_copyright: true|&\n\1tlcourse_chapter_subset: true|'
STRICT := -W -n --keep-going

# Warnings are errors; the outputs are nbval's (the same jupyter-cache), so nothing executes again:
# tests/test_book_build.py checks that each chapter's cache record is still the one nbval stored,
# that the HTML has the chapters' outputs and plots, and that no file of the no-solutions build holds
# a line of a solution (book/_ext/leakscan.py, which that build also runs on itself) and its buttons
# open the student notebooks; tests/test_browser.py opens both builds offline in
# Chromium (/usr/bin/chromium). (Run alone, these builds execute what is missing: run `make nbval`
# first, or both builds execute the same notebooks at once.)
book-check: install
	@mkdir -p _build && date +%s > _build/.book-check-start
	sed $(ABS_PATHS) $(SHARED_CACHE) _config.yml > _build/_config.check.yml
	$(BIN)tlcourse assign --out _build/check-student --force
	sed $(ABS_PATHS) $(SHARED_CACHE) $(call NO_SOLUTIONS,$(CURDIR)/_build/check-student) _config.yml > _build/_config.check-nosolutions.yml
	@# The two builds at once (each is one Python process on its own output folder; both only read
	@# the execution cache): the public book's log is printed after the no-solutions book's.
	TLCOURSE_STRICT_CHECKS=1 $(BIN)jupyter-book build . --config _build/_config.check.yml --path-output _build/check $(STRICT) \
	  > _build/check.log 2>&1 & public=$$!; \
	$(BIN)jupyter-book build . --config _build/_config.check-nosolutions.yml --path-output _build/check-nosolutions $(STRICT) \
	  && nosolutions=0 || nosolutions=$$?; \
	wait $$public && public=0 || public=$$?; cat _build/check.log; \
	echo "public book build: exit $$public; no-solutions book build: exit $$nosolutions"; \
	test $$public -eq 0 && test $$nosolutions -eq 0
	@grep -q 'class="exercise' _build/check-nosolutions/_build/html/book/01-what-is-transfer.html || (echo "the no-solutions build lost its exercises" && false)
	TLCOURSE_NB_CACHE=$(NB_CACHE) $(PY) -m pytest -q -p no:cacheprovider -m book tests/test_book_build.py tests/test_browser.py
	@echo "book-check: $$(( $$(date +%s) - $$(cat _build/.book-check-start) )) s"

# The book for a graded course: executed like `make book` (same execution cache), solutions removed;
# its Colab/Binder/download buttons give the student notebooks (_config.yml's
# tlcourse_student_repository says where they are published). `make book-nosolutions CHAPTERS=02,06`:
# those chapters only (numbers, slugs or file stems), with the front matter; they keep their numbers.
CHAPTERS ?=
comma := ,
CHAPTER_LIST = $(subst $(comma), ,$(CHAPTERS))
book-nosolutions: install
	@mkdir -p _build
	$(if $(CHAPTERS),$(PY) book/_ext/chapter_subset.py --toc _toc.yml --out _build/_toc.nosolutions.yml $(CHAPTER_LIST),rm -f _build/_toc.nosolutions.yml)
	$(BIN)tlcourse assign --out _build/nosolutions-student --force $(if $(CHAPTERS),--chapters $(CHAPTER_LIST),)
	sed $(ABS_PATHS) $(SHARED_CACHE) $(call NO_SOLUTIONS,$(CURDIR)/_build/nosolutions-student) $(if $(CHAPTERS),$(SUBSET),) _config.yml > _build/_config.nosolutions.yml
	rm -rf _build/nosolutions/_build/html  # no page of an earlier selection stays behind
	$(BIN)jupyter-book build . --config _build/_config.nosolutions.yml --path-output _build/nosolutions $(if $(CHAPTERS),--toc _build/_toc.nosolutions.yml,)
	@echo "The book without solutions: $(abspath _build/nosolutions/_build/html/index.html)"

# Student notebooks (solutions replaced by stubs) for every chapter; `make student EXERCISES_ONLY=1`
# keeps only each chapter's setup cell and exercise section.
student: install
	$(BIN)tlcourse assign --out _build/student --force $(if $(EXERCISES_ONLY),--exercises-only,)

# Each chapter's exercise section runs after its setup cell alone and raises nothing but the stubs' errors;
# chapter 6's nbgrader assignment is generated and autograded (reference, stubs, planted mistakes).
student-check: install
	@$(TIMED) $(XDIST) -q -rP -p no:cacheprovider -m notebook tests/test_student_notebooks.py tests/test_nbgrader.py || [ $$? -eq 5 ]

test: SMOKE_ONLY = 05-t5
test: lint unit smoke nbval student-check book-check

# Where the chapters get their data. `make test DATA_PATH=download` (CI's "Colab, simulated" pass)
# runs nbval, student-check and book-check with TLCOURSE_DATA set but empty, which means "no data
# directory" (conftest.py leaves an empty value alone), so every chapter goes through the data
# bundle's download path: TLCOURSE_DATA_URL and TLCOURSE_DATA_CACHE come from the caller
# (.ci/run). The unit tests keep TLCOURSE_DATA.
ifeq ($(DATA_PATH),download)
nbval student-check book-check: export TLCOURSE_DATA :=
endif

# The course data bundle (tlcourse/data/bundle.py): one reproducible .tar.gz per top-level folder of
# DATA and registry.txt in OUT; fails when an archive differs from the package's registry.
DATA ?= ../shared/data
OUT ?= _build/data-bundle
data-bundle: install
	@$(TIMED) $(PY) -m tlcourse.data.bundle build $(DATA) $(OUT) --check

sync:
	$(PY) -m tlcourse._release --write  # every chapter's install line: tlcourse/_release.py's URL and ref
	touch book/[0-9][0-9]-*.md  # the Markdown is the source: make it the newer side of each pair
	$(BIN)jupytext --sync book/[0-9][0-9]-*.md

clean:
	rm -rf _build
