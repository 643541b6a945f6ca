"""Offload's Prometheus series, one module per concern.

- `registry`: multiprocess mode, the collectors read at scrape time, and the scrape itself;
- `jobs`: the job series and the queue's depth and age;
- `web`: rate-limit decisions and websocket connections;
- `services`: whether Redis and the workers answer;
- `database`: django-prometheus' database series, connected from `OffloadConfig.ready()`.

Web and worker processes each write their samples to files in PROMETHEUS_MULTIPROC_DIR
(prometheus_client's multiprocess mode; config/settings.py points every process at the
folder before prometheus_client is imported). A scrape of /metrics sums the files of every
process, dead ones included, so a counter never goes backwards when a worker is recycled.
Other apps add their own series and collectors from their `ready()` (search does).
"""
