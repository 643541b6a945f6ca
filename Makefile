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

.PHONY: run test lint schema venv system-deps test-system-deps services clean

run: venv system-deps
	$(PY) scripts/run.py

test: venv test-system-deps services lint
	mkdir -p var/test/library var/test/output
	$(TEST_ENV) $(PY) manage.py check --fail-level WARNING
	$(TEST_ENV) $(PY) manage.py spectacular --validate --fail-on-warn --file var/test/schema.yml
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts.test.yml
	promtool check config deploy/prometheus/prometheus.yml
	$(TEST_ENV) $(PY) -m pytest

lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# ffprobe comes from the system's ffmpeg package (imageio-ffmpeg ships ffmpeg alone);
# the tests also drive Debian's chromium, and check the alerting rules with promtool.
system-deps:
	@bash scripts/ensure_system_packages.sh

test-system-deps:
	@bash scripts/ensure_system_packages.sh --test

services:
	@bash scripts/ensure_services.sh

clean:
	rm -rf $(VENV) var
