"""Settings for chatapp, read from the environment (see the table in README.md)."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Off unless asked for: `make run` asks (development); a server started any other way shows
# no debug page, no settings and no traceback to anyone.
DEBUG = env_bool("DEBUG", False)
# Published in this repository: anyone can read it, so it is for development only.
DEVELOPMENT_KEY = "dev-only-insecure-key"
SECRET_KEY = os.environ.get("SECRET_KEY") or (DEVELOPMENT_KEY if DEBUG else "")
if not DEBUG and SECRET_KEY in ("", DEVELOPMENT_KEY):
    raise ImproperlyConfigured(
        "DEBUG is off, so chatapp needs a SECRET_KEY of its own: set the SECRET_KEY "
        "environment variable (make serve makes one), or DEBUG=true for development."
    )
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "servestatic.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "axes",
    "chatapp",
    "assistants_registry.site_editor",
    "assistants_registry.writers_room",
    "assistants_registry.data_analyst",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files served by the application itself, compressed and cached: a plain
    # `daphne chatapp.asgi:application` serves htmx, the styles and the script.
    "servestatic.middleware.ServeStaticMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it answers a locked-out login
]

ROOT_URLCONF = "chatapp.urls"
ASGI_APPLICATION = "chatapp.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=600,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Runs write from background tasks while requests read: wait for the lock instead of
    # failing at once, and take the write lock up front so transactions never deadlock.
    # WAL lets readers and the writer work at once; NORMAL sync is safe with WAL and avoids an
    # fsync per commit.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # A file, not memory: the browser test's live server is another process.
    database_file = Path(DATABASES["default"]["NAME"])
    DATABASES["default"]["TEST"] = {
        "NAME": str(database_file.with_name(f"test-{database_file.name}"))
    }
else:
    # Named explicitly: channels' live server derives "test_" + NAME otherwise, and NAME is
    # already the test database's by the time it starts.
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}"}

REDIS_URL = os.environ.get("REDIS_URL", "")


def redis_layer(url: str) -> dict[str, object]:
    """The channel layer's configuration for a Redis server (also used by the tests)."""
    return {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": url,
                    # redis-py 8 refuses (rather than waits) past max_connections, default
                    # 100: leave room for every process's runs and relays at once.
                    "max_connections": int(os.environ.get("REDIS_MAX_CONNECTIONS", "1000")),
                    # redis-py 8 times out any read after 5 s by default, and channels_redis
                    # 4.3 blocks in BZPOPMIN for up to 5 s while a channel is quiet: the read
                    # raised, and an idle receiver died (channels_redis#422). Longer than the
                    # blocking read, so a quiet channel is never an error.
                    "socket_timeout": 30,
                }
            ],
            "capacity": 1500,
            "expiry": 30,
        },
    }


if REDIS_URL:
    CHANNEL_LAYERS = {"default": redis_layer(REDIS_URL)}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Logins are throttled by django-axes, on the chat's login page and the admin's alike: after
# CHATAPP_LOGIN_FAILURES wrong passwords for one username from one address, logins from there
# are refused for CHATAPP_LOGIN_COOLOFF_MINUTES, the right password included.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("CHATAPP_LOGIN_FAILURES", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("CHATAPP_LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
AXES_CLIENT_IP_CALLABLE = "chatapp.web.access.client_address"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Once collected with STATIC_HASHED=true (make serve does): hashed names, compressed,
    # cached for a year. Until then (make run, make test): the plain names, so nothing has
    # to be collected first.
    "staticfiles": {
        "BACKEND": "servestatic.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_HASHED", (STATIC_ROOT / "staticfiles.json").is_file())
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# In development the files are read from the apps and static/ as they change.
SERVESTATIC_USE_FINDERS = DEBUG
SERVESTATIC_AUTOREFRESH = DEBUG
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# A strict policy: scripts and styles only from our own files (htmx is vendored under
# static/), so markup that a model, a tool or a user wrote can never run script or restyle the
# page. Templates therefore carry no inline <script>, no <style> and no style="" attributes.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "connect-src": [CSP.SELF],  # the websocket is same-origin
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
# Django's database sessions, read through a compiled query (chatapp/sessions.py).
SESSION_ENGINE = "chatapp.sessions"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Outside development the site is served over HTTPS: never send the cookies in clear text.
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
# Behind a proxy that terminates TLS (README, "Deploying"): it says so in this header, and it
# redirects plain HTTP itself. HSTS is switched on once the site is surely HTTPS only.
# Behind a proxy (README, "Deploying") the proxy says whether the request was HTTPS and who
# sent it (the address it appends to X-Forwarded-For), and only it may say so.
BEHIND_HTTPS_PROXY = env_bool("BEHIND_HTTPS_PROXY", False)
if BEHIND_HTTPS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Other origins whose pages may post forms and open websockets here (scheme://host:port).
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "0"))

# --- chatapp -------------------------------------------------------------------------------
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "")
OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", "") or None
OPENAI_MODEL = os.environ.get("OPENAI_MODEL", "gpt-5-mini")
OPENAI_TIMEOUT = float(os.environ.get("OPENAI_TIMEOUT", "60"))
OPENAI_MAX_RETRIES = int(os.environ.get("OPENAI_MAX_RETRIES", "2"))

# The provider an assistant uses when it names none: the real one once a key or a local
# OpenAI-compatible server is configured, the built-in offline model otherwise.
CHATAPP_DEFAULT_PROVIDER = os.environ.get(
    "CHATAPP_DEFAULT_PROVIDER", "openai" if (OPENAI_API_KEY or OPENAI_BASE_URL) else "offline"
)
# Seconds between two words of the offline model (0 streams as fast as possible).
OFFLINE_MODEL_DELAY = float(os.environ.get("OFFLINE_MODEL_DELAY", "0.03"))

CHATAPP_MAX_MESSAGE_CHARS = int(os.environ.get("CHATAPP_MAX_MESSAGE_CHARS", "8000"))
CHATAPP_MAX_HANDOFFS_PER_RUN = int(os.environ.get("CHATAPP_MAX_HANDOFFS_PER_RUN", "4"))
# How deep consultations may nest (an assistant asking one that asks another...).
CHATAPP_MAX_CONSULT_DEPTH = int(os.environ.get("CHATAPP_MAX_CONSULT_DEPTH", "2"))
CHATAPP_TOOL_TIMEOUT = float(os.environ.get("CHATAPP_TOOL_TIMEOUT", "30"))
# Partial text of a streaming message is written to the database this often (seconds).
CHATAPP_FLUSH_INTERVAL = float(os.environ.get("CHATAPP_FLUSH_INTERVAL", "1.0"))
# A run beats every CHATAPP_RUN_EXPIRY / 6 seconds; one whose heartbeat is older than this is
# dead (its process died) and is marked expired by a sweep of every server process.
CHATAPP_RUN_EXPIRY = float(os.environ.get("CHATAPP_RUN_EXPIRY", "30"))
# Every model call ends: after this many seconds in all, or this many without any data
# (keep-alive comments do not count).
CHATAPP_MODEL_DEADLINE = float(os.environ.get("CHATAPP_MODEL_DEADLINE", "600"))
CHATAPP_MODEL_IDLE = float(os.environ.get("CHATAPP_MODEL_IDLE", "60"))
# A page (and the frame a websocket sends on connect) shows the latest messages that fit in
# about this many characters, and loads earlier ones on demand; a message or a tool result
# longer than CHATAPP_SHOWN_CHARS is shown shortened, with a link to the whole text.
CHATAPP_PAGE_CHARS = int(os.environ.get("CHATAPP_PAGE_CHARS", "200000"))
CHATAPP_SHOWN_CHARS = int(os.environ.get("CHATAPP_SHOWN_CHARS", "50000"))
# Database work of async code (runs, sockets) runs on this many threads (chatapp/db.py).
# SQLite writes one at a time, so more threads only wait for its lock; PostgreSQL answers
# several at once, and a thread mostly waits for it.
CHATAPP_DB_THREADS = int(
    os.environ.get(
        "CHATAPP_DB_THREADS",
        "4" if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3" else "10",
    )
)
# Answers starting at once: the others wait their turn, in order (chatapp/admission.py).
CHATAPP_STARTS_AT_ONCE = int(os.environ.get("CHATAPP_STARTS_AT_ONCE", "2"))
# On SIGTERM/SIGINT, the runs of a server process are saved as interrupted within this time.
CHATAPP_SHUTDOWN_GRACE = float(os.environ.get("CHATAPP_SHUTDOWN_GRACE", "5"))

# What one user may do at once (plain messages say so when a limit is reached): answers being
# written, pages open (per server process), messages per minute (all their pages together),
# and tokens per day (UTC; 0: no limit).
CHATAPP_MAX_RUNS_PER_USER = int(os.environ.get("CHATAPP_MAX_RUNS_PER_USER", "3"))
CHATAPP_MAX_SOCKETS_PER_USER = int(os.environ.get("CHATAPP_MAX_SOCKETS_PER_USER", "30"))
CHATAPP_MAX_MESSAGES_PER_MINUTE = int(os.environ.get("CHATAPP_MAX_MESSAGES_PER_MINUTE", "20"))
CHATAPP_DAILY_TOKENS_PER_USER = int(os.environ.get("CHATAPP_DAILY_TOKENS_PER_USER", "0"))

# Assistants defined as code (see `manage.py sync_assistants`): YAML files besides the apps'
# own assistants.py / assistants.yaml (relative paths are relative to BASE_DIR), and this
# environment's changes to them, e.g. {"page-editor": {"model": "gpt-5-mini"}, "*": {...}}.
CHATAPP_ASSISTANT_FILES = env_list("CHATAPP_ASSISTANT_FILES", "")
try:
    CHATAPP_ASSISTANT_OVERRIDES = json.loads(os.environ.get("CHATAPP_ASSISTANT_OVERRIDES") or "{}")
except json.JSONDecodeError as exc:
    raise ImproperlyConfigured(f"CHATAPP_ASSISTANT_OVERRIDES is not valid JSON: {exc}") from None

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "chatapp": {"handlers": ["console"], "level": "INFO"},
        # The `openai` client's HTTP library logs every request to the model server with its
        # whole URL, credentials in it included (user:password@, ?api-key=); Daphne logs INFO.
        # Failures reach the log through chatapp, with the server's address redacted.
        "httpx2": {"level": "WARNING"},
        "httpcore2": {"level": "WARNING"},
    },
}

# Files people attach to a thread, and files tools make (chatapp/files.py): kept with Django's
# storage API (STORAGES["default"]: MEDIA_ROOT here, any storage backend in production) and
# served only to the thread's owner and staff with the permission, never from MEDIA_URL.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", BASE_DIR / "media"))
CHATAPP_MAX_FILE_BYTES = int(os.environ.get("CHATAPP_MAX_FILE_BYTES", str(10 * 2**20)))
CHATAPP_MAX_FILES_PER_THREAD = int(os.environ.get("CHATAPP_MAX_FILES_PER_THREAD", "20"))
# What may be attached, by file name extension (the browser's own type is not trusted).
CHATAPP_FILE_TYPES = env_list(
    "CHATAPP_FILE_TYPES", "csv,tsv,txt,md,json,xml,yaml,yml,py,log,png,jpg,jpeg,gif,webp,pdf,xlsx"
)

# The code interpreter (`run_python`, chatapp/sandbox/): bubblewrap, and what the code may use.
CHATAPP_SANDBOX_BWRAP = os.environ.get("CHATAPP_SANDBOX_BWRAP", "bwrap")
CHATAPP_SANDBOX = {
    "CPU_SECONDS": int(os.environ.get("CHATAPP_SANDBOX_CPU_SECONDS", "10")),
    "WALL_SECONDS": float(os.environ.get("CHATAPP_SANDBOX_WALL_SECONDS", "30")),
    "MEMORY_MB": int(os.environ.get("CHATAPP_SANDBOX_MEMORY_MB", "1024")),
    "PROCESSES": int(os.environ.get("CHATAPP_SANDBOX_PROCESSES", "32")),
    "OUTPUT_CHARS": int(os.environ.get("CHATAPP_SANDBOX_OUTPUT_CHARS", "20000")),
    "FILE_MB": int(os.environ.get("CHATAPP_SANDBOX_FILE_MB", "20")),
    "WORK_MB": int(os.environ.get("CHATAPP_SANDBOX_WORK_MB", "100")),
    "FILES": int(os.environ.get("CHATAPP_SANDBOX_FILES", "10")),
}

# Panels shown beside a thread: callables taking the thread and returning HTML (or "").
CHATAPP_THREAD_PANELS = ["assistants_registry.site_editor.panels.page_preview"]
