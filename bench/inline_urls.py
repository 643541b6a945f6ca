"""URLconf for the inline comparison: the app's URLs plus one view that probes during the request."""

from typing import Any

from django.urls import path
from django.utils import timezone
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.urls import urlpatterns as app_urlpatterns
from offload import access
from offload.handlers.probe import guess_kind
from offload.lib import ffmpeg
from offload.lib.paths import InvalidPath, resolve_item_path
from offload.models import MediaStatus


class InlineProbeView(APIView):
    """POST runs ffprobe inside the request and saves the item: what the spine moves to a worker."""

    # Same authentication, permissions and renderers as the app's views (the REST_FRAMEWORK defaults).

    def post(self, request: Request, pk: int) -> Response:
        """Probe the item now and answer its technical metadata."""
        item = access.get_item_for_user(request.user, pk)
        try:
            data = ffmpeg.probe(resolve_item_path(item.library.root, item.relative_path))
        except (InvalidPath, ffmpeg.ProbeError) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        technical: dict[str, Any] = ffmpeg.technical_metadata(data)
        for name, value in technical.items():
            setattr(item, name, value)
        item.kind = guess_kind(item.relative_path, technical)
        item.probe = data
        item.probed_at = timezone.now()
        item.status, item.status_reason = MediaStatus.READY, ""
        item.save(update_fields=[*technical, "kind", "probe", "probed_at", "status", "status_reason", "updated_at"])
        return Response({"id": item.pk, **technical})


# First, so the app's catch-all for unknown /api/ paths never sees it.
urlpatterns = [
    path("api/v1/media/<int:pk>/probe-inline/", InlineProbeView.as_view(), name="bench-probe-inline"),
    *app_urlpatterns,
]
