"""Files of a thread over HTTP and the websocket: upload with its limits (nothing half-stored),
download for the owner and permitted staff only, files sent with a message — on the page in
every tab and named to the model."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from chatapp import services
from chatapp.models import Attachment, Message, Run
from chatapp.providers.scripted import Say
from tests.factories import assistant
from tests.web.test_consumer import connect, frames_until

pytestmark = pytest.mark.django_db(transaction=True)

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00"
    b"\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00"
    b"\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def thread(user):
    return services.start_thread(assistant("helper", name="Helper"), user=user)


def upload(client, thread, *files):
    return client.post(reverse("upload_files", args=[thread.pk]), {"file": list(files)})


def csv(name="data.csv", content=b"x,y\n1,2\n"):
    return SimpleUploadedFile(name, content, content_type="text/csv")


def stored_files() -> list[Path]:
    root = Path(settings.MEDIA_ROOT, "attachments")
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_an_upload_is_stored_whole_listed_and_waits_as_a_chip(client, user, thread):
    client.force_login(user)
    before = set(stored_files())
    response = upload(client, thread, csv())
    assert response.status_code == 200
    attachment = Attachment.objects.get(thread=thread)
    assert (attachment.name, attachment.size, attachment.content_type) == (
        "data.csv",
        8,
        "text/csv",
    )
    assert attachment.message is None and attachment.source == "user"
    html = response.content.decode()
    assert f'name="attachments" value="{attachment.pk}"' in html  # the chip for the composer
    assert 'id="side-panel"' in html and "data.csv" in html  # listed beside the chat
    [new] = set(stored_files()) - before
    assert new.read_bytes() == b"x,y\n1,2\n"
    assert "data.csv" not in str(new)  # stored under its random id, not the user's name
    assert uuid.UUID(str(attachment.pk)).version == 4  # not guessable


def test_a_second_file_of_the_same_name_gets_its_own(client, user, thread):
    client.force_login(user)
    upload(client, thread, csv())
    upload(client, thread, csv())
    assert sorted(thread.attachments.values_list("name", flat=True)) == [
        "data (2).csv",
        "data.csv",
    ]


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        (SimpleUploadedFile("run.exe", b"MZ"), "run.exe: files of this type cannot be attached"),
        (SimpleUploadedFile("page.html", b"<script>"), "page.html: files of this type"),
        (SimpleUploadedFile("empty.csv", b""), "empty.csv is empty."),
        (SimpleUploadedFile("big.csv", b"x" * 2048), "big.csv is too large (2.0\xa0KB; the limit"),
    ],
)
def test_a_refused_file_says_why_and_nothing_is_stored(
    client, user, thread, settings, file, reason
):
    settings.CHATAPP_MAX_FILE_BYTES = 1024
    client.force_login(user)
    before = set(stored_files())
    response = upload(client, thread, file)
    assert response.status_code == 422
    assert reason in response.content.decode()
    assert not Attachment.objects.exists()
    assert set(stored_files()) == before


def test_the_limit_of_files_per_chat(client, user, thread, settings):
    settings.CHATAPP_MAX_FILES_PER_THREAD = 2
    client.force_login(user)
    before = set(stored_files())
    response = upload(client, thread, csv("a.csv"), csv("b.csv"), csv("c.csv"))
    assert response.status_code == 200  # two taken, the third refused
    assert "This chat has 2 files already (the limit is 2)." in response.content.decode()
    assert sorted(thread.attachments.values_list("name", flat=True)) == ["a.csv", "b.csv"]
    assert len(set(stored_files()) - before) == 2  # the refused one's bytes were removed


def test_a_path_in_the_name_is_dropped(client, user, thread):
    client.force_login(user)
    upload(client, thread, csv("../../etc/data.csv"))
    assert thread.attachments.get().name == "data.csv"


def test_another_users_thread_takes_no_upload(client, other_user, thread):
    client.force_login(other_user)
    assert upload(client, thread, csv()).status_code == 404
    assert not Attachment.objects.exists()


def stored(thread, name="data.csv", content=b"x,y\n1,2\n"):
    from django.core.files.base import ContentFile

    from chatapp import files

    return files.attach(thread, ContentFile(content), name)


def test_only_the_owner_downloads(client, user, other_user, thread):
    attachment = stored(thread)
    url = reverse("file", args=[attachment.pk])
    client.force_login(other_user)
    assert client.get(url).status_code == 404  # like a file that does not exist
    client.force_login(user)
    response = client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == b"x,y\n1,2\n"
    assert response["Content-Disposition"].startswith('attachment; filename="data.csv"')
    assert response["Content-Type"] == "application/octet-stream"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox; default-src 'none'"
    client.logout()
    assert client.get(url).status_code == 302  # to the login page


def test_staff_need_the_view_permission(client, django_user_model, thread):
    attachment = stored(thread)
    url = reverse("file", args=[attachment.pk])
    staff = django_user_model.objects.create_user("staff", password="x", is_staff=True)
    client.force_login(staff)
    assert client.get(url).status_code == 404
    staff.user_permissions.add(Permission.objects.get(codename="view_attachment"))
    client.force_login(staff)
    assert client.get(url).status_code == 200


def test_an_image_is_shown_inline_and_an_svg_is_not(client, user, thread):
    client.force_login(user)
    png = stored(thread, "plot.png", PNG)
    response = client.get(reverse("file", args=[png.pk]))
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline")
    svg = Attachment.objects.create(
        thread=thread, name="x.svg", content_type="image/svg+xml", size=5, file=png.file.name
    )
    response = client.get(reverse("file", args=[svg.pk]))
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"].startswith("attachment")


def test_deleting_the_chat_deletes_its_files(client, user, thread):
    attachment = stored(thread)
    path = Path(attachment.file.path)
    assert path.exists()
    services.delete_thread(thread)
    assert not path.exists()


async def test_files_sent_with_a_message_show_in_every_tab_and_reach_the_model(
    thread, user, script
):
    from asgiref.sync import sync_to_async

    attachment = await sync_to_async(stored)(thread)
    provider = script(Say("Got your table."))
    first, _ = await connect(thread.pk, user)
    second, _ = await connect(thread.pk, user)
    await first.receive_from()
    await second.receive_from()
    frame = {"type": "message", "text": "", "client_id": "c1", "attachments": str(attachment.pk)}
    await first.send_to(text_data=json.dumps(frame))
    for tab in (first, second):
        frames = await frames_until(tab, "Got your table.")
        joined = "".join(frames)
        assert f'href="/files/{attachment.pk}/"' in joined and 'data-client-id="c1"' in joined
    message = await Message.objects.aget(thread=thread, role="user")
    assert message.content == ""
    await attachment.arefresh_from_db()
    assert attachment.message_id == message.pk
    [request] = provider.requests
    assert request.messages[-1].content == "(Attached: data.csv (8\xa0bytes))"
    await thread.arefresh_from_db()
    assert thread.title == "data.csv"  # named after its file when it has no words
    for tab in (first, second):
        await tab.disconnect()


async def test_a_file_of_another_chat_or_already_sent_refuses_the_message(thread, user, script):
    from asgiref.sync import sync_to_async

    def files_it_may_not_send():
        elsewhere = services.start_thread(assistant("other", name="Other"), user=user)
        sent = stored(elsewhere, "sent.csv")
        services.send_message(elsewhere, "here", attachments=[sent.pk])
        return stored(elsewhere), sent

    foreign, sent = await sync_to_async(files_it_may_not_send)()
    tab, _ = await connect(thread.pk, user)
    await tab.receive_from()
    for ids in ([str(foreign.pk)], [str(sent.pk)], ["not-an-id"]):
        frame = {"type": "message", "text": "look", "attachments": ids}
        await tab.send_to(text_data=json.dumps(frame))
        frames = await frames_until(tab, 'id="notice"')
        assert "One of the files sent with this message is" in frames[-1]
    assert not await Message.objects.filter(thread=thread).aexists()
    assert not await Run.objects.filter(thread=thread).aexists()
    await foreign.arefresh_from_db()
    assert foreign.message_id is None
    await tab.disconnect()
