from django.urls import path, re_path

from offload.web import health
from offload.web.favicon import favicon
from offload.web.media import serve_media
from offload.web.metrics_view import metrics_view

urlpatterns = [
    path("healthz/live", health.live, name="healthz-live"),
    path("healthz/ready", health.ready, name="healthz-ready"),
    path("metrics", metrics_view, name="metrics"),
    path("favicon.ico", favicon, name="favicon"),
    # Renditions and thumbnails; a production deployment serves these from the proxy.
    re_path(r"^media/(?P<path>.*)$", serve_media),
]
