# Assent: `make demo` serves a demo on 127.0.0.1:8000; `make test` runs every check; `make bench` the benchmarks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= postgres://postgres@127.0.0.1:5432

.PHONY: demo test lint bench venv clean browser fuzz

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	ASSENT_DEMO=1 $(BIN)/python manage.py migrate --noinput
	ASSENT_DEMO=1 $(BIN)/python manage.py load_demo
	ASSENT_DEMO=1 $(BIN)/python manage.py runserver --noreload 127.0.0.1:8000

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	ASSENT_DEMO=1 $(BIN)/mypy config consent subjects

# The browser tests drive Debian's chromium through Playwright (never `playwright install`).
BROWSER_PACKAGES := chromium fonts-liberation fonts-dejavu-core

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing $(BROWSER_PACKAGES) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; }

test: $(STAMP) lint browser
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

# Hostile input (tests/fuzz): the full budget, fresh seeds, over 2,000 generated cases; `make test` runs a small
# derandomized budget of the same tests. The last lines print how many cases were sent and how they were answered.
fuzz: $(STAMP)
	ASSENT_FUZZ=full $(BIN)/python -m pytest -p no:cacheprovider tests/fuzz $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m tests.benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info
