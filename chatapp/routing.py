from __future__ import annotations

from django.urls import path, re_path

from chatapp.web.consumers import NoSuchSocket, ThreadConsumer

websocket_urlpatterns = [
    path("ws/threads/<uuid:thread_id>/", ThreadConsumer.as_asgi()),
    # Anything else is refused like a thread that does not exist, not answered with an error.
    re_path(r"", NoSuchSocket.as_asgi()),
]
