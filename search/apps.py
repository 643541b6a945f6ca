from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Search"

    def ready(self) -> None:
        # Search plugs itself into offload's registries; offload never imports search.
        from django.conf import settings
        from django_q.models import Schedule

        from offload.admin.dashboard import register_panel
        from offload.admin.media import use_media_search
        from offload.jobs import register, register_schedule
        from offload.metrics.registry import register_collector
        from offload.web.health import register_check
        from search import checks, dashboard, health, signals, tasks
        from search.changelist import changelist_search
        from search.monitoring import SearchCollector

        register(tasks.KIND)
        checks.register_all()
        signals.connect()
        register_collector(SearchCollector())
        register_check("search", health.check)
        register_panel("search", dashboard.TEMPLATE, dashboard.search_panel)
        use_media_search(changelist_search)
        # Run by the search lane's own scheduler (its cluster name), so they never wait behind
        # the default lane's work; the cluster's catch_up=False means no storm after downtime.
        register_schedule(
            "search: retry index writes",
            lambda: {
                "func": "search.tasks.drain_pending",
                "schedule_type": Schedule.MINUTES,
                "minutes": 1,
                "cluster": settings.SEARCH_Q_CLUSTER,
            },
        )
        register_schedule(
            "search: reconcile index with database",
            lambda: {
                "func": "search.tasks.reconcile",
                "schedule_type": Schedule.MINUTES,
                "minutes": settings.SEARCH_RECONCILE_MINUTES,
                "cluster": settings.SEARCH_Q_CLUSTER,
            },
        )
