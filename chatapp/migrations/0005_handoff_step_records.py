"""Handoff steps recorded before HandoffRecord named their assistants `from` and `to`; the
record (the same one the handoff's event message carries) names them `source` and `target`,
with their names."""

from django.db import migrations


def forwards(apps, schema_editor):
    RunStep = apps.get_model("chatapp", "RunStep")
    Assistant = apps.get_model("chatapp", "Assistant")
    names = dict(Assistant.objects.values_list("slug", "name"))
    for step in RunStep.objects.filter(kind="handoff").iterator():
        data = dict(step.data or {})
        if "from" not in data and "to" not in data:
            continue
        source, target = data.pop("from", ""), data.pop("to", "")
        data.update(
            kind="handoff",
            source=source,
            source_name=names.get(source, source),
            target=target,
            target_name=names.get(target, target),
        )
        step.data = data
        step.save(update_fields=["data"])


def backwards(apps, schema_editor):
    RunStep = apps.get_model("chatapp", "RunStep")
    for step in RunStep.objects.filter(kind="handoff").iterator():
        data = dict(step.data or {})
        if "source" in data:
            data["from"], data["to"] = data.pop("source"), data.pop("target", "")
            step.data = data
            step.save(update_fields=["data"])


class Migration(migrations.Migration):
    dependencies = [("chatapp", "0004_step_started_at")]

    operations = [migrations.RunPython(forwards, backwards)]
