from django.contrib import admin
from django.urls import include, path, re_path

from offload import health
from offload.api.errors import api_not_found
from offload.metrics_view import metrics_view
from offload.outputs import serve_media

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("offload.api.urls")),
    re_path(r"^api/", api_not_found),
    path("healthz/live", health.live, name="healthz-live"),
    path("healthz/ready", health.ready, name="healthz-ready"),
    path("metrics", metrics_view, name="metrics"),
    # Renditions and thumbnails; a production deployment serves these from the proxy.
    re_path(r"^media/(?P<path>.*)$", serve_media),
]

handler500 = "offload.api.errors.server_error"
