"""Websocket routes, mounted by config.asgi under the origin check and session auth."""

from django.urls import path

from offload.notifications.consumers import JobEventsConsumer

websocket_urlpatterns = [path("ws/events/", JobEventsConsumer.as_asgi())]
