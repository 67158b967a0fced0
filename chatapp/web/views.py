"""Pages: the list of a user's threads, starting, renaming and deleting one, and the thread page.

Every state-changing view is POST-only (and CSRF-protected by the middleware); every thread is
looked up through `owned_threads`, so another user's thread is a 404 like a missing one.
"""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from chatapp import files, services
from chatapp.models import Assistant, Attachment, Message, Thread
from chatapp.web.access import owned_threads
from chatapp.web.chats import chat_list
from chatapp.web.page import oob, partial, side_context, thread_context, window


def get_owned_thread(request: HttpRequest, thread_id: UUID) -> Thread:
    """The request's user's thread, or a 404 that looks the same whether the thread belongs
    to someone else or does not exist."""
    return get_object_or_404(
        owned_threads(request.user).select_related("current_assistant"), pk=thread_id
    )


def redirect_back(request: HttpRequest) -> HttpResponse:
    """Back to the page the form came from (`next`), if it is on this site; else the list.

    Checking the host and scheme stops a crafted form from bouncing users to another site.
    """
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return redirect(target)
    return redirect("threads")


@login_required
@require_safe
def thread_list(request: HttpRequest) -> HttpResponse:
    threads = (
        owned_threads(request.user)
        .filter(parent__isnull=True)  # consultations are shown inside their parent thread
        .select_related("current_assistant")
        .order_by("-updated_at")
    )
    return render(
        request,
        "chat/thread_list.html",
        {"threads": threads, "entry_assistants": Assistant.objects.filter(is_entry=True)},
    )


@login_required
@require_POST
def new_thread(request: HttpRequest) -> HttpResponse:
    slug = request.POST.get("assistant", "")
    assistant = Assistant.objects.filter(is_entry=True, slug=slug).first()
    if assistant is None:
        # Only entry assistants start chats; any other slug is a stale or forged form.
        messages.error(request, "Choose one of the assistants below to start a chat.")
        return redirect("threads")
    thread = services.start_thread(assistant, user=request.user)
    return redirect("thread", thread_id=thread.pk)


@login_required
@require_safe
def thread_page(request: HttpRequest, thread_id: UUID) -> HttpResponse:
    thread = get_owned_thread(request, thread_id)
    context = {
        "thread": thread,
        "chats": chat_list(request.user),
        "current": thread,
        "max_message_chars": settings.CHATAPP_MAX_MESSAGE_CHARS,
        "file_types": ",".join(f".{kind}" for kind in settings.CHATAPP_FILE_TYPES),
        **thread_context(thread),
    }
    return render(request, "chat/thread.html", context)


@login_required
@require_safe
def chats(request: HttpRequest) -> HttpResponse:
    """A page of the user's chats for the list beside a conversation: `q` searches them,
    `page` and `after` go on from "Show more", `current` marks the chat on screen."""
    try:
        page = int(request.GET.get("page") or 1)
        current_id = UUID(request.GET["current"]) if request.GET.get("current") else None
    except ValueError:
        return HttpResponseBadRequest("page must be a number and current a chat's id.")
    current = owned_threads(request.user).filter(pk=current_id).first() if current_id else None
    found = chat_list(request.user, request.GET.get("q", ""), page, request.GET.get("after", ""))
    return render(request, "chat/chat_list.html#items", {"chats": found, "current": current})


@login_required
@require_safe
def earlier_messages(request: HttpRequest, thread_id: UUID) -> HttpResponse:
    """The messages before `before`, as much as a page shows at once, for the button at the
    top of a long conversation (htmx puts them in its place)."""
    thread = get_owned_thread(request, thread_id)
    try:
        before = int(request.GET.get("before", ""))
    except ValueError:
        return HttpResponseBadRequest("before must be a message id.")
    earlier = window(thread, before=before)
    return render(
        request,
        "chat/thread.html#earlier",
        {"thread": thread, "items": earlier.items, "earlier": earlier.earlier},
    )


@login_required
@require_safe
def message_text(request: HttpRequest, message_id: int) -> HttpResponse:
    """The whole text of one message of the user's threads, for messages shown shortened."""
    message = get_object_or_404(
        Message.objects.filter(thread__in=owned_threads(request.user)), pk=message_id
    )
    response = HttpResponse(message.content, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="message-{message.pk}.txt"'
    return response


@login_required
@require_POST
def rename_thread(request: HttpRequest, thread_id: UUID) -> HttpResponse:
    thread = get_owned_thread(request, thread_id)
    try:
        services.rename_thread(thread, request.POST.get("title", ""))
    except services.TitleRejected as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Chat renamed.")
    return redirect_back(request)


@login_required
@require_POST
def delete_thread(request: HttpRequest, thread_id: UUID) -> HttpResponse:
    thread = get_owned_thread(request, thread_id)
    try:
        services.delete_thread(thread)
    except services.ThreadBusy as exc:
        messages.error(request, str(exc))
        return redirect_back(request)
    messages.success(request, "Chat deleted.")
    return redirect(reverse("threads"))


@login_required
@require_POST
def upload_files(request: HttpRequest, thread_id: UUID) -> HttpResponse:
    """Files for the user's next message (`file`, one or more): stored as the thread's, and
    answered with a chip for each in the composer; any refused file is named in a notice
    with the reason (422 when none was taken)."""
    thread = get_owned_thread(request, thread_id)
    most = settings.CHATAPP_MAX_FILE_BYTES * MAX_FILES_AT_ONCE + 64 * 1024
    if int(request.META.get("CONTENT_LENGTH") or 0) > most:  # refused before it is read
        return refused(
            f"Too much at once: attach at most {MAX_FILES_AT_ONCE} files of at most "
            f"{filesizeformat(settings.CHATAPP_MAX_FILE_BYTES)} each.",
            status=413,
        )
    uploads = request.FILES.getlist("file")
    if not uploads:
        return refused("Choose a file to attach.")
    attached, reasons = [], []
    for upload in uploads[:MAX_FILES_AT_ONCE]:
        try:
            attached.append(files.attach(thread, upload, upload.name))
        except files.FileRejected as exc:
            reasons.append(str(exc))
    if len(uploads) > MAX_FILES_AT_ONCE:
        reasons.append(f"Only the first {MAX_FILES_AT_ONCE} files were taken.")
    if not attached:
        return refused(" ".join(reasons))
    html = partial("file_chips", {"attached": attached})
    html += partial("notice", {"text": " ".join(reasons)})
    html += oob("side_panel", **side_context(thread))
    return HttpResponse(html)


MAX_FILES_AT_ONCE = 10


def refused(reason: str, status: int = 422) -> HttpResponse:
    return HttpResponse(partial("notice", {"text": reason}), status=status)


@login_required
@require_safe
def download_file(request: HttpRequest, file_id: UUID) -> FileResponse:
    """A file of the user's threads (any thread's, for staff with the view permission).

    Raster images are shown inline, everything else is a download; nothing is ever rendered
    as a page of this site (a sandboxing CSP, and no sniffing of the type)."""
    visible = Attachment.objects.all()
    if not (request.user.is_staff and request.user.has_perm("chatapp.view_attachment")):
        visible = visible.filter(thread__in=owned_threads(request.user))
    attachment = get_object_or_404(visible, pk=file_id)
    response = FileResponse(
        attachment.file.open("rb"),
        as_attachment=not attachment.is_image,
        filename=attachment.name,
        content_type=attachment.content_type if attachment.is_image else "application/octet-stream",
    )
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, max-age=3600"
    return response
