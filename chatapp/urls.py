from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path

from chatapp.web import views

urlpatterns = [
    path("", views.thread_list, name="threads"),
    path("threads/new/", views.new_thread, name="new_thread"),
    path("chats/", views.chats, name="chat_list"),
    path("threads/<uuid:thread_id>/", views.thread_page, name="thread"),
    path("threads/<uuid:thread_id>/earlier/", views.earlier_messages, name="earlier_messages"),
    path("messages/<int:message_id>/text/", views.message_text, name="message_text"),
    path("threads/<uuid:thread_id>/files/", views.upload_files, name="upload_files"),
    path("files/<uuid:file_id>/", views.download_file, name="file"),
    path("threads/<uuid:thread_id>/rename/", views.rename_thread, name="rename_thread"),
    path("threads/<uuid:thread_id>/delete/", views.delete_thread, name="delete_thread"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]
