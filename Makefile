# The two commands of the README: `make book` and `make test`.  Both create .venv when it is missing.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CHAPTERS := $(sort $(wildcard book/*.md))
export PYTHONHASHSEED := 0
export OMP_NUM_THREADS := 1
export TF_CPP_MIN_LOG_LEVEL := 3
export TF_ENABLE_ONEDNN_OPTS := 0

.PHONY: venv book test unit nbval data notebooks tune bench lint clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || python3 -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

## book: execute every chapter and build the HTML in _build/html (fails on any cell error or warning)
book: venv
	$(BIN)/jupyter-book build -W -n --keep-going .
	@echo "open _build/html/index.html"

## test: lint, unit tests, then the regression checks of the executed chapters (nbval)
test: venv lint unit nbval

lint: venv
	$(BIN)/ruff check analysis tests benchmarks

unit: venv
	$(BIN)/pytest -q tests

nbval: venv
	$(BIN)/pytest -q -p no:cacheprovider --nbval-lax --nbval-current-env \
		--nbval-sanitize-with book/sanitize.cfg $(CHAPTERS:.md=.ipynb)

## notebooks: refresh the executed reference notebooks (book/*.ipynb) from the MyST sources, deliberately
notebooks: venv
	for f in $(CHAPTERS); do \
		$(BIN)/jupytext --to ipynb --update-metadata '{"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}' -o $${f%.md}.ipynb $$f; \
		$(BIN)/jupyter execute --inplace --timeout=1800 $${f%.md}.ipynb; \
	done

## data: regenerate the workbook with the kMC engine on all cores (about 25 minutes)
data: venv
	$(BIN)/python -m analysis dataset --engine kmc --out data/BD_compuesta_MMD_BA_Mn_Mw.xlsx

## tune: rerun the study's hyperparameter search and store the chosen values in data/hyperparameters.json
tune: venv
	$(BIN)/python -m analysis tune
	$(BIN)/python -m analysis tune --nested

## bench: speed figures of the engines (prints ratios to the targets)
bench: venv
	$(BIN)/python benchmarks/engines.py
	$(BIN)/python benchmarks/inversion.py

clean:
	rm -rf _build .pytest_cache
