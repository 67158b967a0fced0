"""Websockets are opened only from the site's own pages: the Origin a browser sends must be
the site's own origin — scheme, host and port — or one of CSRF_TRUSTED_ORIGINS.

Channels' AllowedHostsOriginValidator compares host names only, so a page served from another
port of the same host (http://127.0.0.1:9999) could open a socket with the user's cookies."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host


def own_origin(scope: dict[str, Any]) -> str | None:
    """The origin of the page that may open this socket: the scheme it was reached with
    (https behind a proxy that says so) and the Host it was asked for, if that is allowed."""
    headers = dict(scope.get("headers") or [])
    host = headers.get(b"host", b"").decode("latin1").lower()
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    secure = scope.get("scheme") == "wss" or (
        settings.SECURE_PROXY_SSL_HEADER is not None
        and headers.get(b"x-forwarded-proto", b"").decode("latin1").lower() == "https"
    )
    return f"{'https' if secure else 'http'}://{host}"


def same_origin(scope: dict[str, Any]) -> bool:
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin", b"").decode("latin1").lower().rstrip("/")
    if not origin or urlsplit(origin).scheme not in ("http", "https"):
        return False
    trusted = {each.lower().rstrip("/") for each in settings.CSRF_TRUSTED_ORIGINS}
    return origin == own_origin(scope) or origin in trusted


class SameOriginValidator:
    """ASGI middleware: a websocket from any other origin is refused, like an unknown one."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not same_origin(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
