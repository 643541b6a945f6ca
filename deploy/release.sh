#!/bin/sh
# The one-off steps before a host's processes start (what offload-prepare.service runs, in
# the same order): refuse placeholder or development secrets, empty the metrics folder, migrate,
# write the periodic tasks, collect the static files. Run it in the checkout, with the
# deployment's environment and the virtualenv's python first on PATH.
set -eu
python manage.py check --deploy --fail-level ERROR
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
python manage.py migrate --noinput
python manage.py schedules
python manage.py collectstatic --noinput
