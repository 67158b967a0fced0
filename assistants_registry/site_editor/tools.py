"""The site editor's tools. Welcome's `select_page` opens a page (an after-tool handoff rule
then moves the thread to the Page editor); the Page editor's tools edit that page.

Each needs a permission of the user: viewing pages, changing them, and (for the `published`
setting) publishing them — the demo user has all three, a new user none. Publishing also
waits for the user to approve the call."""

from __future__ import annotations

from typing import Any, Literal

from assistants_registry.site_editor.models import Page
from assistants_registry.tools import ToolContext, ToolError, tool


def current_page(ctx: ToolContext) -> Page:
    page_id = ctx.metadata.get("page_id")
    if not page_id:
        raise ToolError("No page is selected; ask Welcome to choose one first.")
    try:
        return Page.objects.get(slug=page_id)
    except Page.DoesNotExist:
        raise ToolError(f"The page {page_id!r} no longer exists.") from None


def describe(page: Page) -> str:
    flags = ", ".join(
        f"{k.replace('_', ' ')}: {'yes' if v else 'no'}" for k, v in page.settings.items()
    )
    return f"{page.title} ({page.slug}): {page.get_layout_display()} layout" + (
        f"; {flags}" if flags else ""
    )


VIEW, CHANGE, PUBLISH = (
    "site_editor.view_page",
    "site_editor.change_page",
    "site_editor.publish_page",
)


@tool(permission=VIEW)
def select_page(ctx: ToolContext, page: str) -> str:
    """Open one of the site's pages for editing: checks it exists and hands the thread to the
    page editor.

    Args:
        page: The page's slug, such as about or home.
    """
    slug = page.strip().lower()
    found = Page.objects.filter(slug=slug).first()
    if found is None:
        known = ", ".join(Page.objects.values_list("slug", flat=True)) or "none"
        raise ToolError(f"There is no page {page!r}. The pages are: {known}.")
    ctx.metadata["page_id"] = found.slug
    return f"Opened {describe(found)}."


@tool(permission=VIEW)
def list_pages() -> str:
    """List the site's pages with their titles."""
    return "; ".join(f"{p.slug}: {p.title}" for p in Page.objects.all()) or "The site has no pages."


@tool(permission=CHANGE)
def set_title(ctx: ToolContext, title: str) -> str:
    """Set the title of the page being edited.

    Args:
        title: The new title.
    """
    page = current_page(ctx)
    page.title = title.strip()
    page.save(update_fields=["title", "updated_at"])
    return f"The title of {page.slug} is now {page.title!r}."


@tool(permission=CHANGE)
def set_body(ctx: ToolContext, text: str) -> str:
    """Replace the body text of the page being edited.

    Args:
        text: The new body text, in Markdown.
    """
    page = current_page(ctx)
    page.body = text
    page.save(update_fields=["body", "updated_at"])
    return f"The body of {page.slug} now has {len(text.split())} words."


@tool(permission=CHANGE)
def set_layout(ctx: ToolContext, layout: Literal["single", "sidebar", "wide"]) -> str:
    """Change the layout of the page being edited.

    Args:
        layout: single (one column), sidebar (with a sidebar) or wide (full width).
    """
    page = current_page(ctx)
    page.layout = layout
    page.save(update_fields=["layout", "updated_at"])
    return f"{page.slug} now uses the {page.get_layout_display()} layout."


def publishes(arguments: dict[str, Any]) -> bool:
    """Publishing or unpublishing is seen by visitors at once: the user approves it first."""
    return arguments.get("published") is not None


@tool(permission=CHANGE, needs_approval=publishes)
def update_settings(
    ctx: ToolContext, published: bool | None = None, show_in_menu: bool | None = None
) -> str:
    """Change the settings of the page being edited: published, and shown in the menu.

    Args:
        published: Whether visitors can see the page.
        show_in_menu: Whether the page appears in the site menu.
    """
    page = current_page(ctx)
    changes = {
        k: v
        for k, v in {"published": published, "show_in_menu": show_in_menu}.items()
        if v is not None
    }
    if not changes:
        raise ToolError("Say which setting to change: published or show_in_menu.")
    if published is not None:  # publishing is a permission of its own
        ctx.require(PUBLISH, "publish or unpublish pages")
    page.settings = {**page.settings, **changes}
    page.save(update_fields=["settings", "updated_at"])
    return f"Settings of {page.slug}: {describe(page)}."


@tool(permission=VIEW)
def show_page(ctx: ToolContext) -> str:
    """Show the current title, layout and settings of the page being edited."""
    return describe(current_page(ctx))


TOOLS = [select_page, list_pages, set_title, set_body, set_layout, update_settings, show_page]
