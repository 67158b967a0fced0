"""ASGI entry point: HTTP through Django, websockets through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapp.settings")
# Build Django's app first: it sets up the app registry that the routing imports need.
django_application = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chatapp import collector  # noqa: E402
from chatapp.providers import get_provider  # noqa: E402
from chatapp.routing import websocket_urlpatterns  # noqa: E402
from chatapp.web.origins import SameOriginValidator  # noqa: E402

# Load the model providers (and the openai package) now, not under the first answers.
get_provider()

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Last: everything loaded so far lives as long as the process (collector.py says why).
collector.set_for_serving()
