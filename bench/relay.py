"""The load benchmark's baseline: a bare Channels relay. A websocket that, for each message it
receives, streams the model's answer (raw SSE lines over httpx, decoded with json) straight
back, a frame per token: no database, no channel layer, no rendering.

    daphne -p 8102 bench.relay:application     (DJANGO_SETTINGS_MODULE=chatapp.settings)
"""

from __future__ import annotations

import asyncio
import json
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatapp.settings")
django.setup()

import httpx2  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

MODEL_URL = os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8101/v1") + "/chat/completions"
_client: httpx2.AsyncClient | None = None


def client() -> httpx2.AsyncClient:
    global _client
    if _client is None:
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=100)
        _client = httpx2.AsyncClient(timeout=60, limits=limits)
    return _client


class Relay(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.answering = asyncio.ensure_future(self.answer())

    async def answer(self) -> None:
        body = {"model": "timed", "stream": True, "messages": [{"role": "user", "content": "go"}]}
        async with client().stream("POST", MODEL_URL, json=body) as response:
            async for line in response.aiter_lines():
                if not line.startswith("data:") or line.endswith("[DONE]"):
                    continue
                for choice in json.loads(line[5:]).get("choices") or ():
                    if text := choice.get("delta", {}).get("content"):
                        await self.send(text_data=text)
        await self.send(text_data='data-running="false"')


application = ProtocolTypeRouter({"websocket": URLRouter([re_path(r"", Relay.as_asgi())])})
