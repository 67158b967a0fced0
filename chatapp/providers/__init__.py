"""Model providers by name: `offline` (built in, the default without a key) and `openai`."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from chatapp.providers.base import Provider, ProviderError, ProviderRegistry

registry = ProviderRegistry()


def get_provider(name: str = "") -> Provider:
    """The provider called `name`, or the installation's default for an empty name."""
    _register_builtin()
    return registry.get(name or settings.CHATAPP_DEFAULT_PROVIDER)


@cache
def _register_builtin() -> None:
    # Imported on first use: the openai package is only loaded when a provider is needed.
    from chatapp.providers.offline.model import OfflineProvider
    from chatapp.providers.openai import OpenAIProvider

    registry.register(OfflineProvider())
    registry.register(OpenAIProvider())


__all__ = ["Provider", "ProviderError", "get_provider", "registry"]
