"""`/media/`: published renditions and thumbnails, to whoever may see their item."""

import re
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.http import Http404, HttpResponse
from django.views.static import serve
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from offload.access import media_for

# What may be served: renditions/<item id>/… and thumbnails/<item id>/…; never a dot-folder
# (the partial outputs, a folder moved aside) and nothing outside those two trees.
_SERVED = re.compile(r"(?:renditions|thumbnails)/(?P<item>[0-9]{1,18})/(?!\.)[^/]+(?:/(?!\.)[^/]+)?")


def serve_media(request, path: str) -> HttpResponse:
    """Serve a published rendition or thumbnail to someone who may see its item.

    A session (the admin) or an API token (Authorization: Token …) identifies the reader;
    another user's item answers 404 like a missing one, so ids reveal nothing.
    """
    match = _SERVED.fullmatch(path)
    if match is None:
        raise Http404("No such file.")
    user = request.user
    if not user.is_authenticated:
        try:
            found = TokenAuthentication().authenticate(request)
        except AuthenticationFailed:
            found = None
        if found is None:
            response = HttpResponse("Log in, or send an API token, to fetch media.", status=401)
            response["WWW-Authenticate"] = "Token"
            return response
        user = found[0]
    if not media_for(user).filter(pk=int(match["item"])).exists():
        raise Http404("No such file.")
    if settings.OFFLOAD_MEDIA_ACCEL_REDIRECT:
        return accel_redirect(path)
    # Read at request time: MEDIA_ROOT is a setting, not an import-time constant.
    return serve(request, path, document_root=settings.MEDIA_ROOT)


def accel_redirect(path: str) -> HttpResponse:
    """Hand the file to the proxy (nginx's X-Accel-Redirect): it streams it, Range requests included.

    The file is checked here first, so a missing one answers the app's own 404.
    """
    root = Path(settings.MEDIA_ROOT).resolve()
    target = (root / path).resolve()
    if not target.is_file() or not target.is_relative_to(root):
        raise Http404("No such file.")
    response = HttpResponse()
    # No Content-Type of ours: the proxy sets the file's own from its extension.
    del response["Content-Type"]
    response["X-Accel-Redirect"] = settings.OFFLOAD_MEDIA_ACCEL_REDIRECT.rstrip("/") + "/" + quote(path)
    return response
