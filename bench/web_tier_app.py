"""The app plus two views, for bench/web_tier.py only.

- `GET /bench/insert/` does one INSERT: the floor for a view that writes.
- `POST /api/bench/peer/{id}/probe/` is the plain alternative to Offload's accept: what a Django
  developer writes without it, a DRF view on the same settings that reads the item with
  `get_object_or_404` and calls django-q2's `async_task`. It sits under `/api/` like any API
  view, so the same middleware applies to it (token auth, the per-user rate limit).

Served as `bench.web_tier_app:wsgi` (gunicorn), `bench.web_tier_app:asgi` (the one-port server)
and `bench.web_tier_app:django_asgi` (Django's own ASGI handler, for comparison).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings

# Set before the first request builds the resolver; these processes serve nothing else.
settings.ROOT_URLCONF = "bench.web_tier_app"

from django.core.asgi import get_asgi_application  # noqa: E402
from django.db import connection  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.shortcuts import get_object_or_404  # noqa: E402
from django.urls import path  # noqa: E402

import config.asgi  # noqa: E402  (sets Django up)

# isort: split
from django_q.tasks import async_task  # noqa: E402  (needs the apps loaded)
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from config.urls import urlpatterns as app_urlpatterns  # noqa: E402

asgi = config.asgi.application
wsgi = config.asgi.django_wsgi_app
django_asgi = get_asgi_application()


def bare_insert(request):
    """One INSERT in autocommit, nothing else: the floor for a view that writes."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_hit DEFAULT VALUES")
    return HttpResponse("ok")


class PeerProbe(APIView):
    """The plain alternative: read the item, queue a task, answer 202."""

    def post(self, request, pk: int) -> Response:
        from offload.jobs.lanes import shared_broker
        from offload.models import MediaItem

        item = get_object_or_404(MediaItem, pk=pk)
        # A shared broker, as a developer reading django-q2's docs would pass (one per call otherwise).
        task_id = async_task("bench.noop.noop", item.pk, broker=shared_broker())
        return Response({"task": task_id}, status=202)


urlpatterns = [
    path("bench/insert/", bare_insert),
    path("api/bench/peer/<int:pk>/probe/", PeerProbe.as_view()),
    *app_urlpatterns,
]
