"""The reference workflow: Welcome picks a page, the Page editor edits it."""

from __future__ import annotations

from assistants_registry.definitions import AssistantDefinition, HandoffDefinition

WELCOME = AssistantDefinition(
    slug="welcome",
    name="Welcome",
    description="Greets you and opens the page you want to manage.",
    instructions=(
        "You are the welcome desk of the site editor. Ask which page the user wants to "
        "manage and open it with select_page; list_pages shows what exists."
    ),
    tools=("select_page", "list_pages"),
    is_entry=True,
    handoffs=(
        HandoffDefinition(
            target="page-editor",
            trigger="after_tool",
            after_tool="select_page",
            required_metadata=("page_id",),
        ),
        HandoffDefinition(
            target="data-analyst",
            description="Hand over to the Data analyst to compute, chart or plot data.",
        ),
    ),
)

PAGE_EDITOR = AssistantDefinition(
    slug="page-editor",
    name="Page editor",
    description="Edits one page of the site: its text, its layout and its settings.",
    instructions=(
        "You are editing the page {{ metadata.page_id }}. Change its title, body, layout and "
        "settings with your tools, and say what you changed. To work on another page, "
        "hand the conversation back to Welcome."
    ),
    tools=("set_title", "set_body", "set_layout", "update_settings", "show_page"),
    handoffs=(
        HandoffDefinition(
            target="welcome",
            tool_name="edit_another_page",
            description="Go back to Welcome to choose another page to edit.",
            extra_instructions=(
                "The user has finished with {{ metadata.page_id }} and wants another page."
            ),
        ),
    ),
)

ASSISTANTS = (WELCOME, PAGE_EDITOR)

PAGES = (
    {
        "slug": "home",
        "title": "Welcome to Example",
        "layout": "wide",
        "body": "We make **examples** for a living.",
        "settings": {"published": True, "show_in_menu": True},
    },
    {
        "slug": "about",
        "title": "About us",
        "layout": "single",
        "body": "A small team that loves tidy websites.",
        "settings": {"published": True, "show_in_menu": True},
    },
    {
        "slug": "contact",
        "title": "Contact",
        "layout": "sidebar",
        "body": "Write to hello@example.com.",
        "settings": {"published": False, "show_in_menu": False},
    },
)
