# Assent: `make demo` serves a demo on 127.0.0.1:8000; `make test` runs every check; `make bench` the benchmarks.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_URL ?= postgres://postgres@127.0.0.1:5432

.PHONY: demo test lint bench venv clean browser faults access soak fuzz screenshots drill two-nodes

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

# The customer's and the DPO's journeys (tests/browser/test_journeys.py) in both languages at 1280 and 390 px, one
# screenshot per step in var/screenshots/ (`make test` runs them too, with the screenshots in artifacts/).
screenshots: $(STAMP) browser
	ASSENT_SCREENSHOTS_DIR=$(CURDIR)/var/screenshots $(BIN)/python -m pytest -p no:cacheprovider \
	  tests/browser/test_journeys.py $(PYTEST_ARGS)
	@ls $(CURDIR)/var/screenshots

# The access matrix (tests/access): every route of the URL conf x every kind of caller; `make test` runs it too.
access: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/access $(PYTEST_ARGS)

# Fault injection, full form: every kill point of every kind of rights request (FAULT_ROUNDS rounds), the broker
# restart, database connections cut and the database away, the mail server refusing; `make test` runs them once.
# The figures (faults injected, by kind and point) go to build/faults.jsonl.
FAULT_ROUNDS ?= 5

faults: $(STAMP)
	@mkdir -p build && rm -f build/faults.jsonl
	FAULT_ROUNDS=$(FAULT_ROUNDS) FAULTS_REPORT=$(CURDIR)/build/faults.jsonl \
	  $(BIN)/python -m pytest -p no:cacheprovider -m faults tests/integration $(PYTEST_ARGS)
	@cat build/faults.jsonl

# The concurrency soak at full length: 100 s of 8 client processes, about 2 minutes with start-up and the audit
# (`make test` runs it for 20 s).
soak: $(STAMP)
	ASSENT_SOAK_SECONDS=100 $(BIN)/python -m pytest -p no:cacheprovider -q -s -m soak tests/soak

# The restore drill (tests/ops/drill.py): 3,000 people seeded, pg_dump, three erased, pg_restore into a new database,
# replay_erasures, then the proofs; prints its timings (`make test` runs it with ten people).
DRILL_SUBJECTS ?= 3000

drill: $(STAMP)
	PG_URL=$(PG_URL) $(BIN)/python -m tests.ops.drill --subjects $(DRILL_SUBJECTS)

# Past one machine (README): two gunicorns and two workers on one PostgreSQL and one broker, 1,000 writes through
# one web node each checked through the other; prints the stale answers and latencies (`make test` runs 50).
two-nodes: $(STAMP)
	PG_URL=$(PG_URL) $(BIN)/python -m tests.ops.two_nodes --round-trips 1000

# Hostile input (tests/fuzz): the full budget, fresh seeds, over 2,000 generated cases; `make test` runs a small
# derandomized budget of the same tests. The last lines print how many cases were sent and how they were answered.
fuzz: $(STAMP)
	ASSENT_FUZZ=full $(BIN)/python -m pytest -p no:cacheprovider tests/fuzz $(PYTEST_ARGS)

# wrk (Debian's package) drives the HTTP load; without it the benchmarks fall back to slower Python clients.
bench: $(STAMP)
	@command -v wrk >/dev/null 2>&1 || { echo "installing wrk for the benchmarks"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python -m tests.benchmarks.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var build *.egg-info
