"""Logins are throttled (django-axes), on the chat's login page and the admin's: after the
set number of wrong passwords, the right one is refused too for a while, in plain words."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada_staff(django_user_model):
    return django_user_model.objects.create_user(
        "ada", password="the-right-one-1", is_staff=True, is_superuser=True
    )


@pytest.mark.parametrize("login", ["login", "admin:login"])
def test_wrong_passwords_pause_logging_in_even_with_the_right_one(login, ada_staff, settings):
    settings.AXES_FAILURE_LIMIT = 5
    client, url = Client(), reverse(login)
    for _ in range(5):
        wrong = client.post(url, {"username": "ada", "password": "a-wrong-one"})
        assert wrong.status_code in (200, 429)
    right = client.post(url, {"username": "ada", "password": "the-right-one-1"})
    assert right.status_code == 429
    page = right.content.decode()
    assert "Too many failed logins" in page and "try again in 15 minutes" in page
    assert "_auth_user_id" not in client.session


def test_a_few_mistakes_do_not_lock_anyone_out(ada_staff):
    client, url = Client(), reverse("login")
    for _ in range(3):
        client.post(url, {"username": "ada", "password": "a-wrong-one"})
    right = client.post(url, {"username": "ada", "password": "the-right-one-1"})
    assert right.status_code == 302


def test_another_address_is_not_locked_out_by_someone_elses_guesses(ada_staff):
    attacker, url = Client(REMOTE_ADDR="203.0.113.9"), reverse("login")
    for _ in range(6):
        attacker.post(url, {"username": "ada", "password": "guess"})
    ada = Client(REMOTE_ADDR="198.51.100.7")
    assert ada.post(url, {"username": "ada", "password": "the-right-one-1"}).status_code == 302


def test_behind_the_proxy_the_address_is_the_one_the_proxy_saw(ada_staff, settings):
    """A guesser cannot dodge the lockout by making up X-Forwarded-For: the proxy appends the
    address it saw, and that right-most one counts."""
    settings.BEHIND_HTTPS_PROXY = True
    url = reverse("login")
    proxy = "10.0.0.2"  # every request arrives from the proxy
    for made_up in range(6):
        guesser = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.{made_up}, 203.0.113.9")
        guesser.post(url, {"username": "ada", "password": "guess"})
    locked = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert locked.post(url, {"username": "ada", "password": "the-right-one-1"}).status_code == 429
    ada = Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert ada.post(url, {"username": "ada", "password": "the-right-one-1"}).status_code == 302


def test_staff_see_a_lockout_in_the_admin_and_clearing_it_lets_the_user_in(
    ada_staff, django_user_model, settings
):
    settings.AXES_FAILURE_LIMIT = 3
    django_user_model.objects.create_user("bob", password="bobs-own-pass-1")
    url = reverse("login")
    for _ in range(3):
        Client().post(url, {"username": "bob", "password": "guess"})
    bob = Client()
    assert bob.post(url, {"username": "bob", "password": "bobs-own-pass-1"}).status_code == 429

    staff = Client()
    staff.force_login(ada_staff)
    listing = staff.get(reverse("admin:axes_accessattempt_changelist"))
    assert listing.status_code == 200 and "bob" in listing.content.decode()
    attempt = AccessAttempt.objects.get(username="bob")
    staff.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"})
    assert bob.post(url, {"username": "bob", "password": "bobs-own-pass-1"}).status_code == 302
