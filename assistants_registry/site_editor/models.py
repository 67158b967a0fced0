from __future__ import annotations

from django.db import models


class Page(models.Model):
    """A page of the demo site: what the site-editor assistants edit."""

    class Layout(models.TextChoices):
        SINGLE = "single", "single column"
        SIDEBAR = "sidebar", "with a sidebar"
        WIDE = "wide", "full width"

    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    layout = models.CharField(max_length=10, choices=Layout, default=Layout.SINGLE)
    # {"published": bool, "show_in_menu": bool}
    settings = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]
        permissions = [("publish_page", "Can publish and unpublish pages")]

    def __str__(self) -> str:
        return self.title
