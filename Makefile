# The two commands of the README: `make book` and `make test`.  Both create .venv when it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# every chapter, slowest first (parallel runs start the long ones first and finish together)
# (chapter 7 is long in `make book` only: its seeds are not run by `make test`; before 5 and 6, which
# then read its fits of seed 42 from the cache)
CHAPTERS := $(addprefix book/,$(addsuffix .md,09c-what-to-measure 09-unseen-recipes 07-analysis \
	10-your-own-mmd 08-identifiability 06-neural-network 05-random-forest 02b-against-experiments \
	09b-measuring-the-polymer 02-simulator 03-data-transformation 04-domain 01-introduction 11-conclusions))
export PYTHONHASHSEED := 0
export TF_CPP_MIN_LOG_LEVEL := 3
export TF_ENABLE_ONEDNN_OPTS := 0
# One thread per library in the book and the tests: the numbers do not depend on the machine's core count,
# and parallel work is done by worker processes instead.  Not for `make tune` or `make data`.
ONE_THREAD := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
NBVAL := --nbval-lax --nbval-current-env --nbval-cell-timeout=1800 --nbval-sanitize-with book/sanitize.cfg

.PHONY: venv book test unit lint nbval data examples notebooks tune finder calibrate bench clean

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || { \
		echo "make needs Python 3.11 (found $$($(PYTHON) --version 2>&1)); the pinned requirements are for 3.11." \
		     "Set PYTHON=python3.11 if it is installed under that name." >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

## book: execute the chapters (two at a time, cached on their code, analysis/ and data/) and build the HTML
book: venv
	$(ONE_THREAD) POLYINVERSE_CACHE=_build/.polyinverse_cache $(BIN)/python -m analysis.chapters $(CHAPTERS)
	$(ONE_THREAD) $(BIN)/jupyter-book build -W -n --keep-going .
	@echo "open _build/html/index.html"

## test: lint, then every unit test and the regression checks of the executed chapters (nbval) in one run
## on two workers (chapters first, slowest first, in this order; unit tests fill the gaps); no cache from
## earlier runs; cells tagged nbval-skip (long tables printed, not checked) run in `make book` only
test: venv lint
	export POLYINVERSE_CACHE=$$(mktemp -d); trap 'rm -rf "$$POLYINVERSE_CACHE"' EXIT; \
	$(ONE_THREAD) $(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder --durations=12 \
		$(NBVAL) $(CHAPTERS:.md=.ipynb) tests

## unit: the fast unit tests (not those marked slow)
unit: venv
	$(ONE_THREAD) $(BIN)/pytest -q -n 2 -m "not slow" tests

lint: venv
	$(BIN)/ruff check analysis tests benchmarks
	$(BIN)/lint-imports

## nbval: re-execute every chapter (two at a time) and compare the checked cells with book/*.ipynb
nbval: venv
	export POLYINVERSE_CACHE=$$(mktemp -d); trap 'rm -rf "$$POLYINVERSE_CACHE"' EXIT; \
	$(ONE_THREAD) $(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile --no-loadscope-reorder $(NBVAL) $(CHAPTERS:.md=.ipynb)

## notebooks: refresh the executed reference notebooks (book/*.ipynb) from the MyST sources, deliberately
notebooks: venv
	export POLYINVERSE_CACHE=$$(mktemp -d); trap 'rm -rf "$$POLYINVERSE_CACHE"' EXIT; \
	for f in $(CHAPTERS); do \
		$(BIN)/jupytext -q --to ipynb --update-metadata '{"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}' -o $${f%.md}.ipynb $$f; \
	done; \
	printf '%s\n' $(CHAPTERS:.md=.ipynb) | xargs -P 2 -I{} env $(ONE_THREAD) $(BIN)/jupyter execute --inplace --timeout=1800 {}

## data: regenerate the workbook with the kMC engine on all cores (about 25 minutes)
data: venv
	$(BIN)/python -m analysis dataset --engine kmc --out data/BD_compuesta_MMD_BA_Mn_Mw.xlsx

## examples: rewrite the example SEC exports of data/examples and their truth.json
examples: venv
	$(BIN)/python -m analysis examples --out data/examples

## tune: rerun the study's hyperparameter search and the nested searches (all cores, all threads), then
## `make finder` and `make calibrate`
tune: venv
	$(BIN)/python -m analysis tune
	$(BIN)/python -m analysis tune --nested
	$(BIN)/python -m analysis tune --finder
	$(ONE_THREAD) $(BIN)/python -m analysis tune --calibrate

## finder: fit and store the finder's models and domains for the workbook, per measurement profile
## (data/finder_models*.pickle.gz; minutes): afterwards an `invert` call fits no model
finder: venv
	$(BIN)/python -m analysis tune --finder

## calibrate: calibrate the inversion's intervals for the workbook (data/interval_calibration.json, committed;
## about an hour and a half on two cores; one profile: python -m analysis tune --calibrate --noise typical)
calibrate: venv
	$(ONE_THREAD) $(BIN)/python -m analysis tune --calibrate

## bench: speed figures of the engines, the inversion and the cluster path (prints ratios to the targets)
bench: venv
	$(BIN)/python benchmarks/engines.py
	$(BIN)/python benchmarks/inversion.py
	$(BIN)/python benchmarks/cluster.py

clean:
	rm -rf _build .pytest_cache
