"""The app plus one bare view, for bench/web_tier.py only: `GET /bench/insert/` does one INSERT.

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
from django.urls import path  # noqa: E402

import config.asgi  # noqa: E402  (sets Django up)
from config.urls import urlpatterns as app_urlpatterns  # noqa: E402

asgi = config.asgi.application
wsgi = config.asgi.django_wsgi_app
django_asgi = get_asgi_application()


def bare_insert(request):
    """One INSERT in autocommit, nothing else: the floor for a view that writes."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_hit DEFAULT VALUES")
    return HttpResponse("ok")


urlpatterns = [path("bench/insert/", bare_insert), *app_urlpatterns]
