"""The scrape: every process's samples, plus the collectors apps register to read state at scrape time."""

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import psutil
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# The classic text format, as prometheus_client's own exporter serves it: every Prometheus
# reads it, and Offload's names need nothing newer.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

_scrape_collectors: list[Collector] = []


def register_collector(collector: Collector) -> None:
    """Read this collector at every scrape (from an app's ready(); once per type)."""
    if not any(type(known) is type(collector) for known in _scrape_collectors):
        _scrape_collectors.append(collector)


def multiprocess_dir() -> str | None:
    """The folder the processes write their samples to, when in multiprocess mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def warn_if_not_multiprocess() -> None:
    """Log when this process's samples will never reach a scrape."""
    if multiprocess_dir() and values.ValueClass.__name__ != "MmapedValue":
        # Something imported prometheus_client before the settings set the folder.
        log.error("prometheus_client was imported before PROMETHEUS_MULTIPROC_DIR was set; this process is not counted")


_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def forget_dead_processes(path: str) -> None:
    """Drop the live gauges of processes that died without saying so (a SIGKILL, a crash)."""
    for entry in Path(path).iterdir():
        match = _LIVE_GAUGE_FILE.match(entry.name)
        if match and not psutil.pid_exists(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), path)
        elif entry.suffix == ".db" and _is_empty_file_of_dead_process(entry):
            # A process killed while creating its file leaves it empty, and one empty file
            # makes every scrape fail; it held no samples, so nothing is lost.
            entry.unlink(missing_ok=True)


def _is_empty_file_of_dead_process(entry: Path) -> bool:
    pid = entry.stem.rpartition("_")[2]
    try:
        return entry.stat().st_size == 0 and pid.isdigit() and not psutil.pid_exists(int(pid))
    except FileNotFoundError:
        return False


class _Everything(Collector):
    """The process's own default registry, outside multiprocess mode."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def scrape() -> bytes:
    """The text exposition of every process's series plus the ones read at scrape time."""
    path = multiprocess_dir()
    if path:
        forget_dead_processes(path)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=path)
    else:
        registry = CollectorRegistry()
        registry.register(_Everything())
    for collector in _scrape_collectors:
        registry.register(collector)
    return generate_latest(registry)
