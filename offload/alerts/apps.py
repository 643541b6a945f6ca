from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "offload.alerts"
    label = "alerts"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # Plugged into the spine's in-transaction event seam and offload's registries here.
        from django.conf import settings
        from django_q.models import Schedule

        from offload.alerts import admin, monitoring, outbox
        from offload.jobs import job_event_recorded, record_in_transaction_when, register_schedule
        from offload.metrics.registry import register_collector

        job_event_recorded.connect(outbox.on_job_event, dispatch_uid="offload.alerts.outbox")
        # Finishes someone's endpoint may hear are recorded in a transaction, so their outbox rows commit with them.
        record_in_transaction_when(outbox.may_notify, outbox.may_hear_sql())
        admin.register()
        monitoring.init_series()
        register_collector(monitoring.FailingEndpointsCollector())
        register_schedule(
            "alerts: send deliveries whose attempt is due",
            lambda: {
                "func": "offload.alerts.delivery.sweep",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "cluster": settings.NOTIFY_Q_CLUSTER,
            },
        )
        register_schedule(
            "alerts: prune deliveries past their retention",
            lambda: {"func": "offload.alerts.delivery.prune", "schedule_type": Schedule.HOURLY},
        )
