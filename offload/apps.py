from pathlib import Path

from django.apps import AppConfig
from django.conf import settings
from django.contrib.admin import apps as admin_apps
from django.core.signals import request_finished


class OffloadConfig(AppConfig):
    name = "offload"
    verbose_name = "Offload"

    def ready(self) -> None:
        # Everything is wired here, nothing at import: each piece has one place to connect.
        from django_q.models import Schedule
        from django_q.signals import post_execute_in_worker, post_spawn, pre_execute

        from offload import checks, logs, signals, tokens
        from offload.admin import jobs as jobs_admin
        from offload.admin import media as media_admin
        from offload.api import caching
        from offload.handlers import enrich, probe, scan, system, thumbnail, transcode
        from offload.jobs import (
            holds_changed,
            job_event_committed,
            listen_for_event_numbers,
            note_schedule_start,
            on_task_starting,
            on_worker_spawned,
            record_schedule_run,
            register,
            register_schedule,
        )
        from offload.lib import limits
        from offload.metrics import database, registry
        from offload.metrics import jobs as job_metrics
        from offload.metrics import web as web_metrics
        from offload.metrics.disk import DiskCollector
        from offload.metrics.jobs import QueueCollector
        from offload.metrics.services import ServicesCollector
        from offload.notifications import publisher
        from offload.web import health

        register(scan.KIND, probe.KIND, enrich.KIND, thumbnail.KIND, transcode.KIND, *system.KINDS)

        checks.register_all()
        jobs_admin.register()
        media_admin.register()
        signals.connect()
        tokens.connect()
        # The cache first: a client that hears of an event and reads the job sees it changed.
        job_event_committed.connect(caching.on_job_event, dispatch_uid="offload.api.caching")
        holds_changed.connect(caching.on_holds_changed, dispatch_uid="offload.api.caching.holds")
        job_event_committed.connect(publisher.on_job_event, dispatch_uid="offload.notifications.publisher")
        # Jobs are counted and timed at the same seam, never inside a transition.
        job_event_committed.connect(job_metrics.on_job_event, dispatch_uid="offload.metrics.jobs")
        limits.on_decision(web_metrics.ratelimit_decision)
        signals.answers_changed.connect(caching.on_answers_changed, dispatch_uid="offload.api.caching.answers")

        database.connect()
        listen_for_event_numbers()
        # Each worker process beats from its start: an idle worker takes over a lost job too.
        post_spawn.connect(on_worker_spawned, dispatch_uid="offload.jobs.runner.heartbeat")
        # A schedule's last run, which django-q2 does not keep (no task results are stored).
        pre_execute.connect(note_schedule_start, dispatch_uid="offload.jobs.schedules.note_start")
        # The task a job's finish acknowledges in its own statement (offload/jobs/delivery.py).
        pre_execute.connect(on_task_starting, dispatch_uid="offload.jobs.delivery")
        post_execute_in_worker.connect(record_schedule_run, dispatch_uid="offload.jobs.schedules.record_run")
        request_finished.connect(logs.clear, dispatch_uid="offload.logs.clear")
        registry.warn_if_not_multiprocess()
        registry.register_collector(QueueCollector())
        registry.register_collector(ServicesCollector())
        registry.register_collector(DiskCollector())
        health.register_check("database", health.check_database)
        health.register_check("redis", health.check_redis)
        health.register_check("workers", health.check_workers)
        # One check per lane, so a dead lane is named (its kinds' jobs would wait forever).
        for lane in settings.OFFLOAD_LANES:
            health.register_check(f"lane:{lane}", health.lane_check(lane))
        register_schedule(
            "offload: re-queue jobs whose worker was lost",
            lambda: {"func": "offload.jobs.reaper.reap_stale_jobs", "schedule_type": Schedule.MINUTES, "minutes": 1},
        )
        register_schedule(
            "offload: prune job events past their retention",
            lambda: {"func": "offload.jobs.events.prune_events", "schedule_type": Schedule.HOURLY},
        )
        register_schedule(
            "offload: prune finished jobs past their retention",
            lambda: {"func": "offload.jobs.retention.prune_jobs", "schedule_type": Schedule.HOURLY},
        )
        register_schedule(
            "offload: roll up finished jobs and queue depth for the dashboard",
            lambda: {"func": "offload.jobs.rollups.roll_up", "schedule_type": Schedule.MINUTES, "minutes": 1},
        )


def make_runtime_folders() -> None:
    """The folders a process writes to at once: the metrics folder and the SQLite file's folder."""
    folders = [settings.PROMETHEUS_MULTIPROC_DIR]
    database = settings.DATABASES["default"]
    if database["ENGINE"].endswith("sqlite3") and str(database["NAME"]) != ":memory:":
        folders.append(Path(database["NAME"]).parent)
    for folder in folders:
        Path(folder).mkdir(parents=True, exist_ok=True)


class OffloadAdminConfig(admin_apps.AdminConfig):
    """Installed in place of django.contrib.admin, so `admin.site` is Offload's site."""

    default = False  # INSTALLED_APPS names it; "offload" alone means OffloadConfig

    default_site = "offload.admin.site.OffloadAdminSite"

    def ready(self) -> None:
        # The first app made ready (INSTALLED_APPS): the admin's autodiscovery already
        # imports modules whose metrics write into the metrics folder.
        make_runtime_folders()
        super().ready()
