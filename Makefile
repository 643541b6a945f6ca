# The two commands: `make run` and `make test`. Everything else here serves them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

# The test suite's services: the machine's PostgreSQL and Redis, on their own database numbers.
TEST_ENV := DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
	REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379/15} \
	REDIS_KEY_PREFIX=offload-test \
	OFFLOAD_LIBRARY_ROOTS=$(CURDIR)/var/test/library \
	MEDIA_ROOT=$(CURDIR)/var/test/output \
	PROMETHEUS_MULTIPROC_DIR=$(CURDIR)/var/test/prometheus \
	SECRET_KEY=offload-test-secret-key-not-for-production-0123456789 \
	DEBUG=0

.PHONY: run test test-fast lint schema venv dev-venv lock system-deps test-system-deps services clean clean-all

run: venv system-deps
	$(PY) scripts/run.py

test: dev-venv test-system-deps services lint
	mkdir -p var/test/library var/test/output
	$(TEST_ENV) $(PY) manage.py check --fail-level WARNING
	$(TEST_ENV) $(PY) manage.py spectacular --validate --fail-on-warn --file var/test/schema.yml
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts.test.yml
	promtool check config deploy/prometheus/prometheus.yml
	$(TEST_ENV) $(PY) -m pytest --durations=10

# The loop while working: everything not marked slow (no real worker processes or servers),
# on the same services; PYTEST_ARGS narrows it further (e.g. PYTEST_ARGS="tests/test_api.py -x").
test-fast: dev-venv test-system-deps services
	mkdir -p var/test/library var/test/output
	$(TEST_ENV) $(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: dev-venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# `make run`: the runtime lock with the embedded run's bundled services (requirements-embedded.txt);
# `make test`: that and the development tools (requirements-dev.txt). A deployment installs
# requirements.txt alone (docs/deploy.md).
venv: $(VENV)/.installed
dev-venv: $(VENV)/.installed-dev

# Debian's python3 makes virtualenvs only with python3-venv: installed first where missing.
$(VENV)/.installed: requirements-embedded.txt
	test -x $(PY) || { PYTHON=$(PYTHON) bash scripts/ensure_system_packages.sh --venv && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-embedded.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# Regenerate the three locks from pyproject.toml (pip-tools, in a virtualenv of its own).
PIP_COMPILE := pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
lock:
	test -x var/lock-tools/bin/pip-compile || ($(PYTHON) -m venv var/lock-tools && var/lock-tools/bin/pip install --quiet pip-tools)
	var/lock-tools/bin/$(PIP_COMPILE) -o requirements.txt pyproject.toml
	var/lock-tools/bin/$(PIP_COMPILE) --extra embedded -o requirements-embedded.txt pyproject.toml
	var/lock-tools/bin/$(PIP_COMPILE) --extra embedded --extra dev -o requirements-dev.txt pyproject.toml

# ffprobe comes from the system's ffmpeg package (imageio-ffmpeg ships ffmpeg alone);
# the tests also drive Debian's chromium, and check the alerting rules with promtool.
system-deps:
	@bash scripts/ensure_system_packages.sh

test-system-deps:
	@bash scripts/ensure_system_packages.sh --test

services:
	@bash scripts/ensure_services.sh

# The OpenAPI document, from the code (SCHEMA=path to write it elsewhere).
SCHEMA ?= var/openapi.yml
schema: venv
	mkdir -p $(dir $(SCHEMA))
	$(PY) manage.py spectacular --validate --fail-on-warn --file $(SCHEMA)
	@echo "Wrote $(SCHEMA)"

# `clean` keeps var/ (the embedded run's database, demo library and media); `clean-all` removes it too.
clean:
	rm -rf $(VENV) var/test var/lock-tools
	find . -name __pycache__ -type d -not -path "./$(VENV)/*" -prune -exec rm -rf {} +

clean-all: clean
	rm -rf var
