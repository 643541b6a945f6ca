"""`/favicon.ico`: browsers ask for it on every page; it points at the icon in static files."""

from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """A permanent redirect to the SVG icon the admin's pages link to."""
    return HttpResponsePermanentRedirect(static("offload/favicon.svg"))
