"""Free and total space of the file systems Offload writes to, read at scrape time."""

import logging
import shutil
from collections.abc import Iterator

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


def watched_folders() -> dict[str, str]:
    """folder label → path: MEDIA_ROOT (renditions and thumbnails grow there) and the metrics folder."""
    return {"media": str(settings.MEDIA_ROOT), "metrics": str(settings.PROMETHEUS_MULTIPROC_DIR)}


class DiskCollector(Collector):
    """offload_disk_free_bytes and offload_disk_size_bytes per folder, for the disk-space alert."""

    def collect(self) -> Iterator[Metric]:
        free = GaugeMetricFamily(
            "offload_disk_free_bytes", "Bytes free to Offload on the file system of a folder.", labels=["folder"]
        )
        size = GaugeMetricFamily("offload_disk_size_bytes", "Size of the file system of a folder.", labels=["folder"])
        for label, path in watched_folders().items():
            try:
                usage = shutil.disk_usage(path)
            except OSError as exc:
                log.warning("metrics: cannot read the disk usage of %s: %s", path, exc)
                continue
            free.add_metric([label], usage.free)
            size.add_metric([label], usage.total)
        yield free
        yield size
