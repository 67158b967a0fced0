"""Every change to an assistant or its rules records a version; runs name the one they used."""

from __future__ import annotations

import pytest

from chatapp import services, versions
from chatapp.models import AssistantVersion, HandoffRule
from chatapp.providers.scripted import Say
from chatapp.runs import say
from tests.factories import assistant, rule

pytestmark = pytest.mark.django_db(transaction=True)


def numbers(a):
    return list(a.versions.order_by("number").values_list("number", flat=True))


def test_creating_and_changing_an_assistant_records_versions():
    bot = assistant("bot", instructions="Be brief.")
    assert numbers(bot) == [1]
    bot.instructions = "Be thorough."
    bot.save()
    bot.save()  # no change, no new version
    assert numbers(bot) == [1, 2]
    assert versions.latest(bot.pk).snapshot["assistant"]["instructions"] == "Be thorough."


def test_rule_changes_record_a_version_of_their_source():
    source, target = assistant("source"), assistant("target")
    handoff = rule(source, target)
    assert numbers(source) == [1, 2]
    handoff.enabled = False
    handoff.save()
    handoff.delete()
    assert numbers(source) == [1, 2, 3, 4]
    assert versions.latest(source.pk).snapshot["rules"] == []


def test_diff_shows_what_changed():
    bot = assistant("bot", instructions="Line one.\nLine two.")
    bot.instructions = "Line one.\nLine 2."
    bot.model = "gpt-x"
    bot.save()
    old, new = AssistantVersion.objects.filter(assistant=bot).order_by("number")
    lines = versions.diff(old, new)
    assert "-    Line two." in lines and "+    Line 2." in lines
    assert '+model: "gpt-x"' in lines


def test_restore_brings_back_settings_and_rules():
    source, target = assistant("source", instructions="Old."), assistant("target")
    rule(source, target, description="Old rule.")
    first = versions.latest(source.pk)
    source.instructions = "New."
    source.save()
    HandoffRule.objects.all().delete()
    restored = versions.restore(first)
    source.refresh_from_db()
    assert source.instructions == "Old."
    assert list(source.handoff_rules.values_list("description", flat=True)) == ["Old rule."]
    assert restored.number == 5 and restored.snapshot == first.snapshot


def test_restore_refuses_when_a_target_is_gone():
    source, target = assistant("source"), assistant("target")
    handoff = rule(source, target)
    with_rule = versions.latest(source.pk)
    handoff.delete()
    target.delete()
    with pytest.raises(versions.RestoreError, match="no longer exist: target"):
        versions.restore(with_rule)


def test_a_run_records_the_version_it_used(user, script):
    bot = assistant("bot")
    bot.instructions = "Version two."
    bot.save()
    script(Say("ok"))
    run = say(services.start_thread(bot, user=user), "hi")
    assert run.assistant_version.number == 2
    assert run.steps.get(kind="message").data["version"] == 2


def test_consult_rules_are_versioned_and_restored():
    from chatapp.models import ConsultRule

    writer, critic = assistant("writer"), assistant("critic")
    ConsultRule.objects.create(source=writer, specialist=critic, description="Ask first.")
    with_consult = versions.latest(writer.pk)
    assert with_consult.snapshot["consults"][0]["specialist"] == "critic"
    ConsultRule.objects.all().delete()
    versions.restore(with_consult)
    assert list(writer.consult_rules.values_list("tool_name", "description")) == [
        ("ask_critic", "Ask first.")
    ]
