"""Admin forms for assistants, their handoff rules and consultations, and threads.

Everything a model will later depend on is checked when staff save, not when a run starts:
templates must render, rule parameters must be a supported schema, an after-tool rule must
name one of the assistant's tools, and a rule's tool name must not hide one of them.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.forms.models import BaseInlineFormSet
from django.utils.text import Truncator

from assistants_registry.registry import Registry, registry
from assistants_registry.tools import ToolSpec
from chatapp.models import Assistant, ConsultRule, HandoffRule, Thread
from chatapp.runs import rule_metadata_keys, sample_context, sample_metadata
from chatapp.runs import template_error as render_error
from chatapp.versions import ASSISTANT_FIELDS, CONSULT_FIELDS, RULE_FIELDS

NOT_INSTALLED = "(not installed)"


def needs(spec: ToolSpec) -> str:
    """The permission a user needs for the tool, and whether it asks before running."""
    notes = [f"users need the permission {spec.permission}"] if spec.permission else []
    if spec.needs_approval is True:
        notes.append("always asks the user before running")
    elif spec.needs_approval:
        notes.append("asks the user before some calls")
    return f" ({'; '.join(notes)})" if notes else ""


def tool_choices(tools: Registry, saved: list[str]) -> list[tuple[str, str]]:
    """The registry's tools, labelled with their descriptions, then any saved name that is
    not installed here: kept as a choice so saving the form does not silently drop it."""
    choices = [
        (spec.name, f"{spec.name} — {Truncator(spec.description).chars(90)}{needs(spec)}")
        if spec.description
        else (spec.name, f"{spec.name}{needs(spec)}")
        for spec in tools
    ]
    choices += [(name, f"{name} {NOT_INSTALLED}") for name in saved if name not in tools]
    return choices


class AssistantForm(forms.ModelForm):
    tools = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="What this assistant can do, from the tool registry.",
    )
    ask_before = forms.MultipleChoiceField(
        required=False,
        label="Ask before running",
        widget=forms.CheckboxSelectMultiple,
        help_text="Of its tools, those whose every call waits for the user to approve or "
        "reject it (tools marked so ask anyway).",
    )

    class Meta:
        model = Assistant
        fields = ["slug", *ASSISTANT_FIELDS]
        widgets = {
            "instructions": forms.Textarea(
                attrs={"rows": 12, "class": "vLargeTextField chatapp-template"}
            ),
            "description": forms.Textarea(attrs={"rows": 3, "class": "vLargeTextField"}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        saved = list(self.instance.tools or []) if self.instance.pk else []
        self.fields["tools"].choices = tool_choices(registry, saved)
        asked = list(self.instance.ask_before or []) if self.instance.pk else []
        self.fields["ask_before"].choices = [
            (name, name) for name, _ in tool_choices(registry, asked + saved)
        ]

    def clean_tools(self) -> list[str]:
        chosen = set(self.cleaned_data["tools"])
        # Keep the saved order (it is the order the model sees the tools in); new ones last,
        # in the order of the checkboxes.
        kept = [name for name in (self.instance.tools or []) if name in chosen]
        choices = [name for name, _ in self.fields["tools"].choices]
        return kept + [name for name in choices if name in chosen and name not in kept]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        instructions = cleaned.get("instructions")
        if instructions:
            context = sample_context(
                slug=cleaned.get("slug") or self.instance.slug or "",
                name=cleaned.get("name") or self.instance.name or "",
                description=cleaned.get("description") or "",
                metadata=sample_metadata(),
            )
            if error := render_error(instructions, context, "instructions"):
                self.add_error("instructions", error)
        return cleaned


class HandoffRuleForm(forms.ModelForm):
    """HandoffRule.clean() (run by the ModelForm) checks the parameters schema and the
    trigger; this form also renders the extra instructions for the target."""

    class Meta:
        model = HandoffRule
        fields = ["target", *RULE_FIELDS]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2, "cols": 60}),
            "parameters": forms.Textarea(attrs={"rows": 4, "cols": 60}),
            "required_metadata": forms.Textarea(attrs={"rows": 1, "cols": 60}),
            "extra_instructions": forms.Textarea(attrs={"rows": 3, "cols": 60}),
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        target: Assistant | None = cleaned.get("target")
        if target is not None and not cleaned.get("tool_name"):
            # Filled in now rather than in save(): two rules left blank must collide here,
            # as a form error, not in the database.
            cleaned["tool_name"] = HandoffRule(target=target).default_tool_name()
        extra = cleaned.get("extra_instructions")
        if target is not None and extra:
            keys = rule_metadata_keys(cleaned.get("parameters"), cleaned.get("required_metadata"))
            context = sample_context(
                slug=target.slug,
                name=target.name,
                description=target.description,
                metadata=sample_metadata(keys),
            )
            if error := render_error(extra, context, "extra instructions"):
                self.add_error("extra_instructions", error)
        return cleaned


class ConsultRuleForm(forms.ModelForm):
    class Meta:
        model = ConsultRule
        fields = ["specialist", *CONSULT_FIELDS]
        widgets = {"description": forms.Textarea(attrs={"rows": 2, "cols": 60})}

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        specialist: Assistant | None = cleaned.get("specialist")
        if specialist is not None and not cleaned.get("tool_name"):
            # As for handoff rules: a collision is a form error, not an IntegrityError.
            cleaned["tool_name"] = ConsultRule(specialist=specialist).default_tool_name()
        return cleaned


class RuleFormSet(BaseInlineFormSet):
    """Rules become tools named after them. A name that is one of the assistant's own tools
    would be shadowed: the model would be offered the tool and never the rule."""

    def clean(self) -> None:
        super().clean()
        # The parent form has already put the tools being saved on the instance.
        tools = set(self.instance.tools or [])
        for form in self.forms:
            data = getattr(form, "cleaned_data", None)
            if not data or data.get("DELETE"):
                continue
            name = data.get("tool_name")
            if self.offers_a_tool(data) and name in tools:
                form.add_error(
                    "tool_name",
                    f"{name!r} is one of this assistant's own tools; name the rule otherwise.",
                )
            self.check(form, data, tools)

    def offers_a_tool(self, data: dict[str, Any]) -> bool:
        return True

    def check(self, form: forms.Form, data: dict[str, Any], tools: set[str]) -> None:
        pass


class HandoffRuleFormSet(RuleFormSet):
    def offers_a_tool(self, data: dict[str, Any]) -> bool:
        return data.get("trigger") != HandoffRule.Trigger.AFTER_TOOL

    def check(self, form: forms.Form, data: dict[str, Any], tools: set[str]) -> None:
        after = data.get("after_tool")
        if not self.offers_a_tool(data) and after and after not in tools:
            form.add_error(
                "after_tool",
                f"This assistant has no tool {after!r}: tick it under Tools, "
                "or name one of its tools.",
            )


class ConsultRuleFormSet(RuleFormSet):
    pass


class ThreadForm(forms.ModelForm):
    class Meta:
        model = Thread
        fields = ["owner", "title", "current_assistant", "metadata"]
        widgets = {"metadata": forms.Textarea(attrs={"rows": 6, "cols": 60})}

    def clean_metadata(self) -> dict[str, Any]:
        metadata = self.cleaned_data["metadata"]
        if metadata in (None, ""):
            return {}
        if not isinstance(metadata, dict):
            raise forms.ValidationError('The metadata is a JSON object, e.g. {"page_id": "about"}.')
        return metadata
