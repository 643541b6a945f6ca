"""Websocket routes, mounted by config.asgi under the origin check and session auth."""

websocket_urlpatterns: list = []
