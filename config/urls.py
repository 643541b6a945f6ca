"""Each app mounts its own URLs here; no app reaches into another's."""

from django.contrib import admin
from django.urls import include, path, re_path

from offload.api.errors import api_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("search.urls")),
    path("api/v1/", include("offload.alerts.urls")),
    path("api/v1/", include("offload.api.urls")),
    re_path(r"^api/", api_not_found),
    path("", include("offload.web.urls")),
]

handler400 = "offload.api.errors.bad_request"
handler500 = "offload.api.errors.server_error"
