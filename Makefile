# Two commands: `make demo` (the synthetic study) and `make test` (linters, import contracts,
# tests).
# Both create .venv if it is missing and (re)install the package when pyproject.toml or
# constraints.txt changes, with the exact versions of constraints.txt (Linux x86-64, Python 3.11;
# elsewhere, or for another CUDA build of torch: CONSTRAINTS= make demo).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORES ?= all
# Trainings/evaluations at once (the `gpu` resource): they share a GPU, or take a core each.
TRAININGS ?= 2
CONSTRAINTS ?= constraints.txt
PIP_CONSTRAINTS := $(if $(CONSTRAINTS),-c $(CONSTRAINTS),)
SNAKEMAKE_ARGS ?=
# Rules run `python -m gazeloc`: put the venv first on PATH for every recipe.
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test lint pytest install install-dev clean-results

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Runtime install (make demo).
$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(PIP_CONSTRAINTS) -e .
	touch $@

# Runtime + test, dev and slurm extras (make test).
$(VENV)/.installed-dev: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(PIP_CONSTRAINTS) -e '.[test,dev,slurm]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/snakemake --cores $(CORES) --resources gpu=$(TRAININGS) $(SNAKEMAKE_ARGS)
	$(BIN)/snakemake --cores 1 --report results/report.html $(SNAKEMAKE_ARGS)

lint: install-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/snakefmt --check Snakefile workflow/rules
	$(BIN)/snakemake --lint --cores 1
	$(BIN)/lint-imports --no-cache

pytest: install-dev
	$(BIN)/python -m pytest -q --durations=15

test: lint pytest

clean-results:
	rm -rf results/* results-tiny .snakemake
	git checkout -- results/README.md
