"""`/media/`: published renditions and thumbnails, to whoever may see their item."""

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.utils._os import safe_join
from django.views.static import serve
from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed

from offload.access import media_for

# What may be served: renditions/<item id>/… and thumbnails/<item id>/…; never a dot-folder
# (the partial outputs, a folder moved aside) and nothing outside those two trees.
_SERVED = re.compile(r"(?:renditions|thumbnails)/(?P<item>[0-9]{1,18})/(?!\.)[^/]+(?:/(?!\.)[^/]+)?")
# One range: "bytes=0-499", "bytes=500-", "bytes=-500" (the last 500 bytes).
_RANGE = re.compile(r"bytes=(?P<start>[0-9]{0,19})-(?P<end>[0-9]{0,19})")
CHUNK = 64 * 1024


def serve_media(request, path: str) -> HttpResponse:
    """Serve a published rendition or thumbnail to someone who may see its item.

    A session (the admin) or an API token (Authorization: Token …) identifies the reader;
    another user's item answers 404 like a missing one, so ids reveal nothing. A `Range`
    request gets 206 with that part, so a player can seek in a large file.
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
    response = serve(request, path, document_root=settings.MEDIA_ROOT)
    if isinstance(response, FileResponse) and request.headers.get("Range") and _range_applies(request, response):
        # Not response.close(): that signals the request's end and closes its database connection.
        response.file_to_stream.close()
        response = _partial(request.headers["Range"], Path(safe_join(settings.MEDIA_ROOT, path)), response)
    response["Accept-Ranges"] = "bytes"
    return response


def _range_applies(request, full: HttpResponse) -> bool:
    """If-Range: the part is wanted only while the file is the one the client has (else the whole file)."""
    validator = request.headers.get("If-Range")
    return validator is None or validator == full.get("Last-Modified")


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The (first, last) byte a Range header asks for, or None when it cannot be satisfied; pure.

    Only one range is served; a list of several answers its first.
    """
    match = _RANGE.fullmatch(header.split(",", 1)[0].strip().replace(" ", ""))
    if match is None or not (match["start"] or match["end"]) or size == 0:
        return None
    if not match["start"]:
        first = max(0, size - int(match["end"]))
        last = size - 1
    else:
        first = int(match["start"])
        last = min(int(match["end"]), size - 1) if match["end"] else size - 1
    if first > last or first >= size:
        return None
    return first, last


def _partial(header: str, file: Path, full: HttpResponse) -> HttpResponse:
    size = file.stat().st_size
    wanted = byte_range(header, size)
    if wanted is None:
        refused = HttpResponse(status=416)
        refused["Content-Range"] = f"bytes */{size}"
        return refused
    first, last = wanted
    response = StreamingHttpResponse(_read(file, first, last - first + 1), status=206)
    for name in ("Content-Type", "Last-Modified", "Content-Encoding"):
        if full.has_header(name):
            response[name] = full[name]
    response["Content-Length"] = str(last - first + 1)
    response["Content-Range"] = f"bytes {first}-{last}/{size}"
    return response


def _read(file: Path, offset: int, length: int) -> Iterator[bytes]:
    with open(file, "rb") as handle:
        handle.seek(offset)
        while length > 0:
            chunk = handle.read(min(CHUNK, length))
            if not chunk:
                return
            length -= len(chunk)
            yield chunk


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
