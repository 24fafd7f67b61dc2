# make demo  - asyncio workers riding an Aurora failover on a simulated cluster, with and without aurora_async
# make test  - everything CI runs: set-up, ruff, mypy, the whole pytest suite
# make docs  - the documentation site (mkdocs build --strict) into site/
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := aurora_async tests examples benchmarks compat scripts

.PHONY: test demo lint typecheck servers bench chaos clean compat docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

servers:
	@scripts/ensure-servers

lint: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)

typecheck: $(STAMP)
	$(BIN)/mypy

# the fast tier first (no servers, seconds), then everything against real servers, a test file per
# worker process (most of a server test is waiting: two workers halve the time on two cores)
WORKERS_TEST ?= 2
test: $(STAMP) lint typecheck
	$(BIN)/pytest tests/unit
	@scripts/ensure-servers
	$(BIN)/pytest -n $(WORKERS_TEST) --dist loadfile --ignore=tests/unit

# the drivers' own test suites (and aurora-data-api's) through aurora_async; fetched from PyPI at run time
compat: $(STAMP) servers
	$(BIN)/python -m compat.run

PEERS := benchmarks/.venv-peers
PEERS_STAMP := $(PEERS)/.installed
# the incumbent, aws-advanced-python-wrapper, in a venv of its own (its botocore pin conflicts with aioboto3)
$(PEERS_STAMP): benchmarks/peers/requirements.txt
	test -x $(PEERS)/bin/python || $(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet --disable-pip-version-check -r benchmarks/peers/requirements.txt
	touch $(PEERS_STAMP)

PLOT_STAMP := $(VENV)/.plot-installed
$(PLOT_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,plot]'
	touch $(PLOT_STAMP)

demo: $(STAMP) servers $(PEERS_STAMP) $(PLOT_STAMP)
	$(BIN)/python examples/demo.py
	$(BIN)/python benchmarks/bench_peers.py --demo

bench: $(STAMP) servers $(PEERS_STAMP)
	$(BIN)/python benchmarks/bench_simulator.py
	$(BIN)/python benchmarks/bench_overhead.py
	$(BIN)/python benchmarks/bench_failover.py
	$(BIN)/python benchmarks/bench_host_monitoring.py
	$(BIN)/python benchmarks/bench_credentials.py
	$(BIN)/python benchmarks/bench_auth_stall.py
	$(BIN)/python benchmarks/bench_pool.py
	$(BIN)/python benchmarks/bench_mysql.py
	$(BIN)/python benchmarks/bench_data_api.py
	$(BIN)/python benchmarks/bench_peers.py
	$(BIN)/python benchmarks/bench_connect.py
	$(BIN)/python benchmarks/bench_loop_lag.py
	$(BIN)/python benchmarks/bench_fleet.py
	$(BIN)/python benchmarks/bench_blue_green.py
	$(BIN)/python benchmarks/bench_global_database.py

DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,docs]'
	touch $(DOCS_STAMP)

# the site: docs/ plus the generated options page and benchmarks/results (scripts/docs_hooks.py)
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# make chaos [DURATION=60] [SEED=n] [WORKERS=50]: the randomized fault run (tests/chaos) and the stateful
# run of identities and API habits (tests/stateful, per engine), longer, reproducible by seed
DURATION ?= 60
chaos: $(STAMP) servers
	CHAOS_SECONDS=$(DURATION) CHAOS_SEED=$(SEED) CHAOS_WORKERS=$(WORKERS) $(BIN)/pytest tests/chaos -s -p no:cacheprovider
	STATEFUL_SECONDS=$(DURATION) STATEFUL_SEED=$(SEED) $(BIN)/pytest tests/stateful -s -p no:cacheprovider

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .mypy_cache .ruff_cache site
