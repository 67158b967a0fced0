from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django import template
from django.utils.dates import MONTHS
from django.utils.safestring import SafeString

from chatapp.web.markdown import markdown as render_markdown

register = template.Library()


@register.filter
def markdown(text: str) -> SafeString:
    """Sanitised Markdown: raw HTML off, no images, safe link schemes only."""
    return render_markdown(text or "")


@register.filter
def minutes(span: timedelta | None) -> str:
    """A wait in plain words: `15 minutes`, `1 minute`."""
    if span is None:
        return ""
    count = max(1, round(span.total_seconds() / 60))
    return f"{count} minute{'s' * (count != 1)}"


@dataclass(frozen=True)
class Moment:
    """One moment as a message's <time> shows it, each as Django's `date` filter would write
    it: `iso` ('c'), `long` ('j F Y, H:i'), `short` ('H:i')."""

    iso: str
    long: str
    short: str


@register.filter(expects_localtime=True)
def moment(when: datetime | None) -> Moment | None:
    """`when` (in the current time zone) written three ways at once: every item of a page
    and of a run's fragments shows one, and three `date` filters each formatted it anew
    (~15% of rendering a run's fragments, py-spy)."""
    if not when:
        return None
    short = f"{when:%H:%M}"
    return Moment(when.isoformat(), f"{when.day} {MONTHS[when.month]} {when.year}, {short}", short)
