"""HTTP and websockets on one port: the embedded run (`make run`) and the websocket server in production.

HTTP is handed to Django's WSGI handler through a fixed pool of OFFLOAD_HTTP_THREADS threads
(a2wsgi). Django's own ASGI handler runs each request's sync middleware and view through
thread hops, a new thread per request, and cost plain views 3-4x their WSGI rate here
(BENCHMARKS.md, "Web tier"). The pool also bounds the process's database connections: one
persistent connection per thread. Websockets go to Channels. In production, HTTP is served by
gunicorn (config.wsgi) and only /ws/ reaches this application.
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Django is set up before anything imports models.
django_wsgi_app = get_wsgi_application()

from a2wsgi import WSGIMiddleware  # noqa: E402
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from offload.notifications.origin import SameOriginValidator  # noqa: E402
from offload.notifications.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": WSGIMiddleware(django_wsgi_app, workers=settings.OFFLOAD_HTTP_THREADS),
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
