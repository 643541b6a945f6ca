"""Files the workers write under MEDIA_ROOT: built in a job's partial folder, published whole.

A reader never sees half a file: output is written under MEDIA_ROOT/.partial/ (the same
filesystem) and renamed into place only once complete and verified. A killed attempt's
partial folder is removed by the next attempt of the same job.
"""

import os
import re
import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.http import Http404, HttpResponse

from offload.models import Job


def media_root() -> Path:
    return Path(settings.MEDIA_ROOT)


def fresh_partial_dir(job: Job) -> Path:
    """An empty working folder for this job, cleared of any earlier attempt's leftovers."""
    path = media_root() / ".partial" / f"job-{job.pk}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def remove_partial_dir(job: Job) -> None:
    shutil.rmtree(media_root() / ".partial" / f"job-{job.pk}", ignore_errors=True)


def publish(source: Path, relative_dest: str) -> Path:
    """Move a finished file or folder to MEDIA_ROOT/relative_dest, replacing what was there."""
    dest = media_root() / relative_dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        # Folders cannot be swapped in one rename: move the old one aside first.
        old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
        if dest.exists():
            os.replace(dest, old)
        os.replace(source, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, dest)
    return dest


def url_for(relative_path: str) -> str:
    return settings.MEDIA_URL + relative_path if relative_path else ""


# What may be served: renditions/<item id>/… and thumbnails/<item id>/…; never a dot-folder
# (the partial outputs, a folder moved aside) and nothing outside those two trees.
_SERVED = re.compile(r"(?:renditions|thumbnails)/(?P<item>[0-9]{1,18})/(?!\.)[^/]+(?:/(?!\.)[^/]+)?")


def serve_media(request, path: str) -> HttpResponse:
    """Serve a published rendition or thumbnail to someone who may see its item.

    A session (the admin) or an API token (Authorization: Token …) identifies the reader;
    another user's item answers 404 like a missing one, so ids reveal nothing.
    """
    from django.views.static import serve
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.exceptions import AuthenticationFailed

    from offload.access import media_for

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
    # Read at request time: MEDIA_ROOT is a setting, not an import-time constant.
    return serve(request, path, document_root=settings.MEDIA_ROOT)
