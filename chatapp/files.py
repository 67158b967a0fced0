"""The files of a thread (Attachment): their one writer, and what tools read of them.

A user's file is stored when it is uploaded and belongs to the thread from then on; the next
message the user sends carries it (`claim`). A tool's files are stored with its result
(`store_outputs`). Bytes go through Django's storage API, so any configured storage backend
holds them; a row exists only for a file that was stored whole, and a stored file whose row
could not be written is deleted again: nothing is ever half-stored.
"""

from __future__ import annotations

import mimetypes
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from pathlib import PurePath
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.db import transaction
from django.db.models.signals import post_delete
from django.template.defaultfilters import filesizeformat

from assistants_registry.tools import OutputFile, ThreadFile
from chatapp.models import Attachment, Message, Thread


class FileRejected(ValueError):
    """The file cannot be accepted; the text says why, in plain words."""


# Types the extension alone does not tell mimetypes everywhere.
KNOWN_TYPES = {
    ".md": "text/markdown",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".py": "text/x-python",
    ".log": "text/plain",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".webp": "image/webp",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


def content_type_of(name: str) -> str:
    """From the extension: what a browser sends is not trusted."""
    suffix = PurePath(name).suffix.lower()
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return KNOWN_TYPES.get(suffix) or guessed or "application/octet-stream"


def clean_name(name: Any) -> str:
    """A file name that is only a name: no folders, no control characters, at most 120
    characters (the extension kept)."""
    if not isinstance(name, str):
        raise FileRejected("A file needs a name.")
    name = PurePath(name.replace("\\", "/")).name
    name = unicodedata.normalize("NFC", name)
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")  # control, format
    name = name.strip().lstrip(".")
    if not name:
        raise FileRejected("A file needs a name.")
    if len(name) > 120:
        suffix = PurePath(name).suffix[:20]
        name = name[: 120 - len(suffix)] + suffix
    return name


def allowed_types() -> str:
    return ", ".join(sorted(settings.CHATAPP_FILE_TYPES))


def check_upload(name: Any, size: int) -> str:
    """The file's clean name, or FileRejected saying why it cannot be attached."""
    name = clean_name(name)
    extension = PurePath(name).suffix.lower().lstrip(".")
    if extension not in {t.lower() for t in settings.CHATAPP_FILE_TYPES}:
        raise FileRejected(
            f"{name}: files of this type cannot be attached. Allowed: {allowed_types()}."
        )
    if size == 0:
        raise FileRejected(f"{name} is empty.")
    if size > (limit := settings.CHATAPP_MAX_FILE_BYTES):
        raise FileRejected(
            f"{name} is too large ({filesizeformat(size)}; the limit is {filesizeformat(limit)})."
        )
    return name


def unique_name(thread_id: Any, name: str) -> str:
    """`name`, or `stem (2).ext` and so on when the thread has a file of that name."""
    taken = set(Attachment.objects.filter(thread_id=thread_id).values_list("name", flat=True))
    if name not in taken:
        return name
    path = PurePath(name)
    number = 2
    while (candidate := f"{path.stem} ({number}){path.suffix}") in taken:
        number += 1
    return candidate


def attach(thread: Thread, content: File, name: Any) -> Attachment:
    """Store a user's upload as a file of `thread`, waiting for their next message."""
    size = content.size or 0
    name = check_upload(name, size)
    return store(thread, content, name, Attachment.Source.USER, size=size)


def store(
    thread: Thread,
    content: File,
    name: str,
    source: str,
    *,
    size: int,
    message: Message | None = None,
    content_type: str = "",
) -> Attachment:
    attachment = Attachment(
        thread=thread,
        message=message,
        content_type=content_type or content_type_of(name),
        size=size,
        source=source,
    )
    attachment.file.save(attachment.pk.hex, content, save=False)  # the bytes first
    try:
        with transaction.atomic():
            # The thread's row, locked: two uploads at once count each other.
            locked = Thread.objects.select_for_update().filter(pk=thread.pk).first()
            if locked is None:
                raise FileRejected("This chat was deleted.")
            count = Attachment.objects.filter(thread=thread).count()
            if source == Attachment.Source.USER and count >= settings.CHATAPP_MAX_FILES_PER_THREAD:
                raise FileRejected(
                    f"This chat has {count} files already (the limit is "
                    f"{settings.CHATAPP_MAX_FILES_PER_THREAD})."
                )
            attachment.name = unique_name(thread.pk, name)
            attachment.save()
    except BaseException:
        attachment.file.storage.delete(attachment.file.name)
        raise
    return attachment


def claim(thread: Thread, message: Message, ids: Sequence[Any]) -> list[Attachment]:
    """Attach the user's waiting files `ids` to `message` (inside its transaction); a file
    that is not this thread's, or already sent, refuses the message."""
    wanted = set()
    for value in ids:
        try:
            wanted.add(uuid.UUID(str(value)))
        except ValueError:
            raise FileRejected("One of the files sent with this message is unknown.") from None
    found = list(
        Attachment.objects.select_for_update().filter(
            thread=thread, pk__in=wanted, message__isnull=True, source=Attachment.Source.USER
        )
    )
    if len(found) != len(wanted):
        raise FileRejected("One of the files sent with this message is no longer there.")
    Attachment.objects.filter(pk__in=wanted).update(message=message)
    return found


def store_outputs(thread_id: Any, message: Message, outputs: Iterable[OutputFile]) -> list[Any]:
    """A tool's files, attached to its result `message` (inside its transaction). Each is
    stored under a name unique in the thread."""
    thread = Thread(pk=thread_id)
    stored = []
    for output in outputs:
        stored.append(
            store(
                thread,
                ContentFile(output.data),
                clean_name(output.name),
                Attachment.Source.TOOL,
                size=len(output.data),
                message=message,
                content_type=output.content_type,
            )
        )
    return stored


def thread_files(thread_id: Any) -> tuple[ThreadFile, ...]:
    """What a tool sees of its thread's files: names, types, sizes, and a way to read each."""
    return tuple(
        ThreadFile(a.name, a.content_type, a.size, read=reader(a))
        for a in Attachment.objects.filter(thread_id=thread_id)
    )


def reader(attachment: Attachment) -> Any:
    def read() -> bytes:
        with attachment.file.open("rb") as handle:
            return handle.read()

    return read


def described(attachments: Iterable[Attachment]) -> str:
    """`data.csv (1.2 KB), plot.png (20 KB)`, for what a model reads."""
    return ", ".join(f"{a.name} ({filesizeformat(a.size)})" for a in attachments)


def delete_stored(sender: Any, instance: Attachment, **kwargs: Any) -> None:
    """A deleted row (its thread deleted, say) takes its bytes along, once that is final."""
    storage, name = instance.file.storage, instance.file.name
    if name:
        transaction.on_commit(lambda: storage.delete(name))


def connect_signals() -> None:
    post_delete.connect(delete_stored, sender=Attachment, dispatch_uid="chatapp.files.delete")
