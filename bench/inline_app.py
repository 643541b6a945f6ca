"""ASGI entry for the inline comparison: the Offload app with bench.inline_urls as its URLconf.

Served by its own uvicorn (`uvicorn bench.inline_app:application`), so the app itself gains no view.
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

from django.conf import settings

# Set before the first request builds the resolver; this process serves nothing else.
settings.ROOT_URLCONF = "bench.inline_urls"

from config.asgi import application  # noqa: E402

__all__ = ["application"]
