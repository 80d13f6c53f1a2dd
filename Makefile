# Two commands do all the set-up on a fresh machine with Python >= 3.11:
#   make lab    create .venv if missing, install, and open the lessons in JupyterLab
#   make test   create .venv if missing, install, and run unit tests + notebooks (nbval)

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The size of the stored notebook outputs, of CI and of `make lab` (the default preset):
# learners see the numbers the lessons discuss.
TEST_SIZE ?= workshop
PYTEST_ARGS ?=

.PHONY: help venv lab test unit lint notebooks data bench bench-publish bench-quick docs clean-data

help:
	@echo "make lab          set up and open the lessons in JupyterLab (localhost, token on)"
	@echo "make test         set up and run unit tests and every notebook under nbval"
	@echo "make unit         unit tests only"
	@echo "make lint         ruff check, ruff format --check and mypy (part of make test)"
	@echo "make notebooks    re-execute every notebook in place, as CI does"
	@echo "make data         generate every lesson dataset into data/"
	@echo "make bench        run the full benchmark (nima-lessons bench)"
	@echo "make bench-publish  run it into notebooks/bench-results, the run lesson 06 shows"
	@echo "make bench-quick  run the quick benchmark (under a minute)"
	@echo "make docs         build the website into docs/_build/html and check it"

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

# The website's tools (the docs extra of pyproject.toml), on top of the main install.
DOCS_STAMP := $(VENV)/.installed-docs
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[docs]"
	touch $(DOCS_STAMP)

# Jupyter refuses to run as root (containers, some cloud machines) unless told to.
ALLOW_ROOT := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root,)

# Trusting the shipped notebooks lets their stored rich outputs render before any re-run.
lab: $(STAMP)
	$(BIN)/jupyter trust notebooks/[0-9]*.ipynb
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 --ServerApp.root_dir=notebooks $(ALLOW_ROOT)

# The linter, the formatter and the type checker come first: a test run fails with them.
# Doctests are collected once, by --doctest-modules in pyproject.toml's pytest addopts.
test: lint
	NIMA_LESSONS_SIZE=$(TEST_SIZE) NIMA_LESSONS_PROGRESS=0 $(BIN)/python -m pytest \
		--nbval --nbval-current-env --nbval-cell-timeout=600 \
		--nbval-sanitize-with notebooks/sanitize.cfg \
		nima_lessons tests notebooks $(PYTEST_ARGS)

unit: $(STAMP)
	NIMA_LESSONS_PROGRESS=0 $(BIN)/python -m pytest nima_lessons tests -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

notebooks: $(STAMP)
	NIMA_LESSONS_SIZE=$(TEST_SIZE) NIMA_LESSONS_PROGRESS=0 $(BIN)/jupyter nbconvert --to notebook --execute --inplace \
		--ExecutePreprocessor.timeout=600 notebooks/[0-9]*.ipynb

data: $(STAMP)
	$(BIN)/nima-lessons data all

bench: $(STAMP)
	$(BIN)/nima-lessons bench --out bench-results --overwrite

# The run lesson 06 plots, committed with the machine that made it; re-execute lesson 06 after it.
bench-publish: $(STAMP)
	$(BIN)/nima-lessons bench --out notebooks/bench-results --overwrite

bench-quick: $(STAMP)
	$(BIN)/nima-lessons bench --quick --out bench-results/quick --overwrite

# The lessons are rendered from their stored outputs, never executed here. -E reads every
# page afresh, so that a warning is never hidden by an earlier build; warnings are errors.
docs: $(DOCS_STAMP)
	rm -rf docs/api/generated
	$(BIN)/sphinx-build -E -W --keep-going -b html docs docs/_build/html
	NIMA_LESSONS_DOCS_REQUIRED=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_docs_site.py

clean-data:
	rm -rf data
