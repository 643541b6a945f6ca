"""django-prometheus' database series (django_db_*), fed by an execute wrapper.

A wrapper rather than django-prometheus' backend engines, so DATABASES keeps Django's own
engines. `connect()` runs from OffloadConfig.ready(), before any request or job queries.
"""

from django.db.backends.signals import connection_created
from django_prometheus.db import metrics as db_metrics


def _observe_query(execute, sql, params, many, context):
    connection = context["connection"]
    alias, vendor = connection.alias, connection.vendor
    count = len(params) if many and hasattr(params, "__len__") else 1
    db_metrics.execute_total.labels(alias, vendor).inc(count)
    if many:
        db_metrics.execute_many_total.labels(alias, vendor).inc(count)
    try:
        with db_metrics.query_duration_seconds.labels(alias, vendor).time():
            return execute(sql, params, many, context)
    except Exception as exc:
        db_metrics.errors_total.labels(alias, vendor, type(exc).__name__).inc()
        raise


def _instrument_connection(sender, connection, **kwargs) -> None:
    db_metrics.connections_total.labels(connection.alias, connection.vendor).inc()
    # The wrapper list belongs to the connection handler, which outlives reconnects.
    if _observe_query not in connection.execute_wrappers:
        connection.execute_wrappers.append(_observe_query)


def connect() -> None:
    """Instrument every database connection this process opens from now on."""
    connection_created.connect(_instrument_connection, dispatch_uid="offload.metrics.database")
