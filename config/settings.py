"""Assent's settings: one module, every knob from the environment (see the README's table).

`ASSENT_DEMO=1` (set by `make demo`) switches to an embedded SQLite database, in-process tasks, the console
mail backend and secrets generated once into var/demo.env. Everywhere else a missing key is an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    env,
    envbool,
    envint,
    envlist,
    key32,
    load_or_create_demo_env,
    master_keys,
    retired_signing_keys,
    signing_key_pem,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env("ASSENT_VAR_DIR", str(BASE_DIR / "var")))

DEMO = envbool("ASSENT_DEMO", False)
if DEMO:
    load_or_create_demo_env(VAR_DIR / "demo.env")

DEBUG = envbool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY: must be set")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEMO or DEBUG else "")
ASSENT_BASE_URL = env("ASSENT_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
# The retailer (the controller, Art. 4(7)) as people read it: in every mail's signature and subject, on the pages.
ASSENT_CONTROLLER_NAME = env("ASSENT_CONTROLLER_NAME", "Kaufhaus Linde" if DEMO else "").strip() or "Assent"
if urlsplit(ASSENT_BASE_URL).scheme not in ("http", "https") or not urlsplit(ASSENT_BASE_URL).netloc:
    raise ImproperlyConfigured(f"ASSENT_BASE_URL: {ASSENT_BASE_URL!r} is not an absolute http(s) URL")
# Reverse proxies (IPs or CIDRs) whose X-Forwarded-For is believed; config/net.py reads the client's address
# through them for every rate limit, lockout and piece of evidence. Empty: REMOTE_ADDR is the client.
# Invalid entries are ignored.
ASSENT_TRUSTED_PROXIES: list[str] = envlist("ASSENT_TRUSTED_PROXIES", "")

# Keys. Formats are checked here so that a wrong key stops the process at start, naming the variable.
ASSENT_MASTER_KEYS = master_keys("ASSENT_MASTER_KEYS")
if not ASSENT_MASTER_KEYS:
    raise ImproperlyConfigured("ASSENT_MASTER_KEYS: must hold at least one kid:key entry")
_blind = key32("ASSENT_BLIND_INDEX_KEY")
_ledger = key32("ASSENT_LEDGER_KEY")
if _blind is None:
    raise ImproperlyConfigured("ASSENT_BLIND_INDEX_KEY: must be set")
if _ledger is None:
    raise ImproperlyConfigured("ASSENT_LEDGER_KEY: must be set")
ASSENT_BLIND_INDEX_KEY: bytes = _blind
ASSENT_LEDGER_KEY: bytes = _ledger
ASSENT_SIGNING_KEY = signing_key_pem("ASSENT_SIGNING_KEY")
# Keys rotated out of signing receipts stay published in /.well-known/jwks.json (consent.receipts).
ASSENT_SIGNING_KEYS_RETIRED = retired_signing_keys("ASSENT_SIGNING_KEYS_RETIRED")
# Unsubscribe links must outlive a SECRET_KEY rotation; without their own key they derive one from it.
ASSENT_LINK_KEY: bytes = key32("ASSENT_LINK_KEY") or hashlib.sha256(b"assent/link-key|" + SECRET_KEY.encode()).digest()
ASSENT_RATE_LIMIT = envint("ASSENT_RATE_LIMIT", 6000, minimum=1)
# Failed API key authentications per client address a minute before 429 (brute force on keys).
ASSENT_AUTH_FAILURES = envint("ASSENT_AUTH_FAILURES", 20, minimum=1)
ASSENT_PHONE_REGION = env("ASSENT_PHONE_REGION", "DE").upper()
ASSENT_CONFIRMATION_DAYS = envint("ASSENT_CONFIRMATION_DAYS", 7, minimum=1)
# Values from before row binding (ciphertext version 1) are read until `reencrypt_fields --check` passes; then set 0,
# so an old value replayed from a backup into another row is refused too.
ASSENT_READ_UNBOUND_VALUES = envbool("ASSENT_READ_UNBOUND_VALUES", True)
ASSENT_IDEMPOTENCY_HOURS = 24
ASSENT_BULK_LIMIT = 10_000
# Art. 32: staff sign in to the admin with a password and a TOTP code; only the zero-setup demo goes without.
ASSENT_ADMIN_REQUIRE_2FA = envbool("ASSENT_ADMIN_REQUIRE_2FA", not DEMO)
# After ASSENT_ADMIN_LOGIN_FAILURES failed sign-ins (a wrong password or a wrong code, one message for both) for one
# username or from one client address, that username or address is locked out for ASSENT_ADMIN_LOCKOUT_MINUTES
# (django-axes); an admin session ends ASSENT_ADMIN_SESSION_HOURS after sign-in whatever happens in between.
ASSENT_ADMIN_LOGIN_FAILURES = envint("ASSENT_ADMIN_LOGIN_FAILURES", 5, minimum=1)
ASSENT_ADMIN_LOCKOUT_MINUTES = envint("ASSENT_ADMIN_LOCKOUT_MINUTES", 30, minimum=1)
ASSENT_ADMIN_SESSION_HOURS = envint("ASSENT_ADMIN_SESSION_HOURS", 8, minimum=1)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "config.apps.TwoFactorDevicesConfig",  # django_otp.plugins.otp_totp, named for the admin
    "axes",
    "config.apps.ProjectConfig",  # process-wide database driver settings (config/db.py)
    "subjects",
    "consent",
    "subjects.portal",  # the customer portal: templates, static files and translations (no models)
]

MIDDLEWARE = [
    "config.requestlog.RequestLogMiddleware",  # first: times, counts and logs every answer, sets X-Request-ID
    "django.middleware.security.SecurityMiddleware",
    "config.security.SecurityHeadersMiddleware",  # CSP by area (django-csp), Permissions-Policy, CORP
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "subjects.portal.middleware.LanguageParamMiddleware",  # ?lang=de|en, kept in the language cookie
    "config.api.ProblemMiddleware",
    "subjects.portal.middleware.IntegrityErrorMiddleware",  # a value moved between rows: a page, never a 500
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a locked-out sign-in into the 429 page below
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
# Axes first: it refuses a locked-out username or address before the password is even checked.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = ASSENT_ADMIN_LOGIN_FAILURES
AXES_COOLOFF_TIME = timedelta(minutes=ASSENT_ADMIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # either one alone locks: per user and per address
AXES_CLIENT_IP_CALLABLE = "config.net.client_address"
AXES_LOCKOUT_TEMPLATE = "assent_admin/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_RESET_ON_SUCCESS = True  # a full sign-in (password and code) proves the person: their failures are forgiven
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are in the audit log already; only failures are kept
AXES_VERBOSE = False
WSGI_APPLICATION = "config.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.pages.site",
            ]
        },
    }
]

# Database: PostgreSQL through psycopg 3 in production and tests; SQLite only for the zero-setup demo.
_database_url = env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'demo.sqlite3'}" if DEMO else "")
if not _database_url:
    raise ImproperlyConfigured("DATABASE_URL: must be set (postgres://user@host:port/db or sqlite:///path)")
try:
    _db = dj_database_url.parse(_database_url, conn_max_age=envint("DATABASE_CONN_MAX_AGE", 600))
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL: {exc}") from None
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL, a busy timeout and immediate transactions: the in-process tasks and requests of the demo
    # would otherwise trip over "database is locked".
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
    }
    _db["CONN_MAX_AGE"] = 0
elif _db["ENGINE"].startswith("django.db.backends.postgresql"):
    _db["CONN_HEALTH_CHECKS"] = True
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
    # Short OLTP statements: JIT compilation costs more (tens of ms on the bulk check) than it ever saves here.
    _db["OPTIONS"].setdefault("options", "-c jit=off")
    # Server-side prepared statements for the few hot statements that ask for them (config.db.prepared_rows);
    # Django's own queries bind on the client and are never prepared. Django leaves psycopg's threshold at None,
    # which turns preparation off even where a cursor asks for it. (Behind a transaction-pooling PgBouncer older
    # than 1.21, set DATABASE_PREPARED_STATEMENTS=0.)
    if envbool("DATABASE_PREPARED_STATEMENTS", True):
        _db["OPTIONS"].setdefault("prepare_threshold", 5)
else:
    raise ImproperlyConfigured(f"DATABASE_URL: {_db['ENGINE']} is not supported (PostgreSQL or SQLite)")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Shared cache (rate-limit counters, catalogue generation). Redis everywhere but the demo.
REDIS_URL = env("REDIS_URL", "" if DEMO else "redis://127.0.0.1:6379/0")
_broker = env("CELERY_BROKER_URL", "")
if not REDIS_URL and _broker.startswith("redis"):
    REDIS_URL = _broker
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", "assent"),
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# The rate limiter's counters (config/ratelimit.py) live in this Redis; empty: REDIS_URL's. Not read from the
# environment: it exists so a test can point the limiter alone at an unreachable Redis.
ASSENT_RATELIMIT_REDIS_URL = ""

# Celery
CELERY_BROKER_URL = _broker or ("memory://" if DEMO else "redis://127.0.0.1:6379/0")
CELERY_RESULT_BACKEND = None
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_ALWAYS_EAGER = DEMO and not _broker
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": envint("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=1)}
CELERY_TIMEZONE = "Europe/Berlin"
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "purge-idempotency-keys": {"task": "consent.tasks.purge_idempotency_keys", "schedule": 3600.0},
    "expire-consents": {"task": "consent.tasks.expire_consents", "schedule": 3600.0},
    "resend-unsent-confirmations": {"task": "consent.tasks.resend_unsent_confirmations", "schedule": 300.0},
    # The ledger and the state read from it (consent.verification): changed subjects often, everything daily.
    "verify-ledger-incremental": {"task": "consent.tasks.verify_ledger_incremental", "schedule": 300.0},
    "verify-ledger-full": {"task": "consent.tasks.verify_ledger_full", "schedule": 24 * 3600.0},
    "purge-expired-records": {"task": "subjects.tasks.purge_expired_records", "schedule": 6 * 3600.0},
    "recheck-children": {"task": "subjects.tasks.recheck_children", "schedule": 24 * 3600.0},
    # Rights requests (subjects.rights.tasks): a safety net for lost messages, deadlines, clean-ups and purges.
    "rights-resume-stalled": {"task": "subjects.rights.resume_stalled", "schedule": 60.0},
    "rights-flag-deadlines": {"task": "subjects.rights.flag_deadlines", "schedule": 3600.0},
    "rights-purge-exports": {"task": "subjects.rights.purge_exports", "schedule": 3600.0},
    "rights-purge-retention": {"task": "subjects.rights.purge_retention", "schedule": 24 * 3600.0},
    "rights-purge-evidence": {"task": "subjects.rights.purge_evidence", "schedule": 24 * 3600.0},
    # Webhooks: retries fall due, and deliveries whose message the broker lost are found, by this sweep.
    "deliver-webhooks": {"task": "consent.tasks.deliver_webhooks", "schedule": 5.0},
    "purge-webhooks": {"task": "consent.tasks.purge_webhooks", "schedule": 24 * 3600.0},
    # Send jobs whose message was lost or whose worker died go to the broker again (consent.send_jobs).
    "send-jobs-resume-stalled": {"task": "consent.tasks.resume_send_jobs", "schedule": 60.0},
    "send-jobs-purge": {"task": "consent.tasks.purge_send_jobs", "schedule": 3600.0},
}
# The rights workflow's tasks live below an app's `tasks` module, where autodiscovery does not look.
CELERY_IMPORTS = ["subjects.rights.tasks"]
# Celery's Django fix-up closes the database connection before and after every task unless this is set: a new
# PostgreSQL connection per task (measured: 10 ms of a 12 ms task). With it the worker keeps its connection for
# this many tasks, and subjects.rights.tasks lets Django drop a broken or too old one before each task
# (CONN_MAX_AGE, CONN_HEALTH_CHECKS), as a web request would.
CELERY_DB_REUSE_MAX = 1000
# Rights requests: how long a worker's claim on a part lasts before another worker may take it over (renewed
# with every batch), and the erasure log's file, which belongs outside the database's backups.
# consent.verification's incremental run re-checks subjects with events recorded this long before the last run
# started: a transaction that began before that run can commit after it.
ASSENT_LEDGER_VERIFY_OVERLAP_SECONDS = envint("ASSENT_LEDGER_VERIFY_OVERLAP_SECONDS", 900, minimum=0)
ASSENT_RIGHTS_LEASE_SECONDS = envint("ASSENT_RIGHTS_LEASE_SECONDS", 60, minimum=1)
# Webhooks (consent.webhooks): http and loopback endpoints only with ASSENT_WEBHOOK_ALLOW_LOOPBACK (tests, local
# development); deliveries of one batch sent by up to ASSENT_WEBHOOK_CONCURRENCY threads; an endpoint failing for
# ASSENT_WEBHOOK_FAILING_HOURS is named on the DPO's dashboard.
ASSENT_WEBHOOK_ALLOW_LOOPBACK = envbool("ASSENT_WEBHOOK_ALLOW_LOOPBACK", False)
# HTTP connectors (subjects.rights.connector): attempts before a part fails, a scale on the retry delays (about
# 5 s, 30 s, 2 min, then doubling up to an hour; tests use 0), and how long a 202 waits for its callback.
ASSENT_CONNECTOR_ATTEMPTS = envint("ASSENT_CONNECTOR_ATTEMPTS", 8, minimum=1)
ASSENT_CONNECTOR_BACKOFF_SCALE = float(env("ASSENT_CONNECTOR_BACKOFF_SCALE", "1"))
ASSENT_CONNECTOR_CALLBACK_SECONDS = envint("ASSENT_CONNECTOR_CALLBACK_SECONDS", 3600, minimum=1)
ASSENT_WEBHOOK_CONCURRENCY = envint("ASSENT_WEBHOOK_CONCURRENCY", 8, minimum=1)
ASSENT_WEBHOOK_FAILING_HOURS = envint("ASSENT_WEBHOOK_FAILING_HOURS", 2, minimum=1)
ASSENT_ERASURE_LOG = Path(env("ASSENT_ERASURE_LOG", str(VAR_DIR / "erasure.log")))
# Send jobs (consent.send_jobs): the uploaded references and the result, as files in this directory (the upload is
# deleted when the job completes, the result ASSENT_SEND_JOB_KEEP_DAYS after the job ended); at most this many lines
# and bytes (after gzip) per job; lines gated per chunk; a worker's claim on a job lasts the lease and is renewed
# with every chunk, so a killed worker's job is taken over after it.
ASSENT_SEND_JOB_DIR = Path(env("ASSENT_SEND_JOB_DIR", str(VAR_DIR / "send-jobs")))
ASSENT_SEND_JOB_MAX_LINES = envint("ASSENT_SEND_JOB_MAX_LINES", 10_000_000, minimum=1)
ASSENT_SEND_JOB_MAX_BYTES = envint("ASSENT_SEND_JOB_MAX_BYTES", 2 * 1024**3, minimum=1)
ASSENT_SEND_JOB_CHUNK_LINES = envint("ASSENT_SEND_JOB_CHUNK_LINES", 20_000, minimum=1)
ASSENT_SEND_JOB_LEASE_SECONDS = envint("ASSENT_SEND_JOB_LEASE_SECONDS", 60, minimum=1)
ASSENT_SEND_JOB_KEEP_DAYS = envint("ASSENT_SEND_JOB_KEEP_DAYS", 7, minimum=1)  # then the job's files are deleted

# Mail (Django's own settings, from the environment)
EMAIL_BACKEND = env(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEMO else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = env("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", f"{ASSENT_CONTROLLER_NAME} <datenschutz@localhost>")

LANGUAGE_CODE = "de"
LANGUAGES = [("de", "Deutsch"), ("en", "English")]
# First in line: German for what django-otp and django-axes show in the admin and left untranslated, or said with
# "du" (config/locale/de); the apps' own catalogues (consent, subjects.portal) come after it.
LOCALE_PATHS = [BASE_DIR / "config" / "locale"]
FORMAT_MODULE_PATH = ["config.formats"]  # English dates as 29 Nov 2026 (config/formats/en)
TIME_ZONE = "Europe/Berlin"
USE_I18N = True
USE_TZ = True

# django-otp: the issuer named in authenticator apps; a TOTP secret is shown only while a device is added.
OTP_TOTP_ISSUER = "Assent"
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# WhiteNoise serves static files (Swagger UI, admin) from the apps directly: no collectstatic step needed.
WHITENOISE_USE_FINDERS = True
with contextlib.suppress(OSError):  # WhiteNoise warns about a missing STATIC_ROOT even when serving from finders
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
WHITENOISE_AUTOREFRESH = DEBUG

# Transport. Production is served over https (ASSENT_BASE_URL says so): cookies are Secure, HSTS is sent for a year
# (ASSENT_HSTS_SECONDS; 0 switches it off) and plain http is redirected (ASSENT_SSL_REDIRECT). Behind a proxy that
# ends TLS, ASSENT_PROXY_SSL_HEADER names the header by which the proxy says the request came over https (e.g.
# X-Forwarded-Proto); without it, a redirecting Assent behind such a proxy would redirect forever. The proxy
# must set or strip that header on every request. The security headers themselves: config/security.py.
HTTPS = not (DEMO or DEBUG) and ASSENT_BASE_URL.startswith("https://")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"  # links carry tokens in their path: never sent to another origin
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = envbool("ASSENT_SSL_REDIRECT", HTTPS)
SECURE_HSTS_SECONDS = envint("ASSENT_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("ASSENT_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = envbool("ASSENT_HSTS_PRELOAD", True)  # the token only; listing is the domain owner's act
_proxy_ssl_header = env("ASSENT_PROXY_SSL_HEADER", "")
if _proxy_ssl_header and not re.fullmatch(r"[A-Za-z0-9-]+", _proxy_ssl_header):
    raise ImproperlyConfigured(f"ASSENT_PROXY_SSL_HEADER: {_proxy_ssl_header!r} is not a header name")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# Portal (subjects/portal): sign-in by e-mail link, no passwords. A link is valid ASSENT_SIGNIN_MINUTES and works
# once; requests are limited per client address per hour (ASSENT_SIGNIN_PER_IP, then 429); an address gets at most
# ASSENT_SIGNIN_PER_ADDRESS mails an hour, evenly spaced and never further apart than a link lives, and a request in
# between sends nothing but answers the same (so nobody can lock an owner out); a portal session ends after
# ASSENT_PORTAL_SESSION_MINUTES without a request (and after 12 hours in any case).
ASSENT_SIGNIN_MINUTES = envint("ASSENT_SIGNIN_MINUTES", 15, minimum=1)
ASSENT_SIGNIN_PER_ADDRESS = envint("ASSENT_SIGNIN_PER_ADDRESS", 5, minimum=1)
ASSENT_SIGNIN_PER_IP = envint("ASSENT_SIGNIN_PER_IP", 30, minimum=1)
ASSENT_PORTAL_SESSION_MINUTES = envint("ASSENT_PORTAL_SESSION_MINUTES", 60, minimum=1)
# A new e-mail address or phone number entered in the portal takes effect only once confirmed: by a link mailed to
# it (valid ASSENT_ADDRESS_LINK_MINUTES) or a code sent by SMS (valid ASSENT_PHONE_CODE_MINUTES, at most
# ASSENT_PHONE_CODE_ATTEMPTS tries); a person may ask for ASSENT_ADDRESS_CHANGES_PER_HOUR changes an hour.
# ASSENT_SMS_BACKEND: dotted path of the SMS backend (subjects/sms.py); outside the demo none is configured.
ASSENT_ADDRESS_LINK_MINUTES = envint("ASSENT_ADDRESS_LINK_MINUTES", 60, minimum=1)
ASSENT_PHONE_CODE_MINUTES = envint("ASSENT_PHONE_CODE_MINUTES", 10, minimum=1)
ASSENT_PHONE_CODE_ATTEMPTS = envint("ASSENT_PHONE_CODE_ATTEMPTS", 5, minimum=1)
ASSENT_ADDRESS_CHANGES_PER_HOUR = envint("ASSENT_ADDRESS_CHANGES_PER_HOUR", 5, minimum=1)
ASSENT_SMS_BACKEND = env(
    "ASSENT_SMS_BACKEND", "subjects.sms.ConsoleBackend" if DEMO else "subjects.sms.DisabledBackend"
)
CSRF_FAILURE_VIEW = "subjects.portal.views.csrf_failure"  # a page in the portal's look: nothing was changed
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024  # a 10,000-reference bulk check fits; larger is a 413

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["config.api.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["config.api.HasScope"],
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.input.GuardedJSONParser"],
    "EXCEPTION_HANDLER": "config.api.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "config.schema.AssentAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Assent API",
    "DESCRIPTION": (
        "Consent ledger, policy check and data-subject rights.\n\n"
        "Authenticate with an API key: `Authorization: Bearer <key>` (Authorize, above). Each operation names the "
        "scope it needs. Errors are RFC 9457 problem details (`application/problem+json`): a 400 names every bad "
        "field in `errors`, a 403 for a missing scope names it in `scope`.\n\n"
        "The OpenAPI document itself: [/api/schema/](/api/schema/) (YAML; a browser shows it as text) or "
        "[/api/schema/?format=json](/api/schema/?format=json) (JSON)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],  # the schema and its docs are public (API.md): no Bearer key needed
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Operations grouped by resource, in this order (each operation names its tag in its extend_schema).
    "TAGS": [
        {"name": "checks", "description": "May a purpose use a channel for a person? The hot path: one or many."},
        {"name": "consents", "description": "Record consent events; read a person's states and their history."},
        {"name": "subjects", "description": "Read a person's data for one purpose."},
        {"name": "records", "description": "Linked records from the systems that hold a person's data; merges."},
        {"name": "sends", "description": "Gate a marketing send: who may get it, with unsubscribe links."},
        {"name": "send-jobs", "description": "Large sends uploaded as NDJSON and gated by a worker."},
        {"name": "requests", "description": "Data-subject rights requests (Art. 15-22 GDPR)."},
        {"name": "webhooks", "description": "Subscriptions to events, delivered signed (Standard Webhooks)."},
    ],
    "ENUM_NAME_OVERRIDES": {
        "RequestStatusEnum": [
            "received",
            "verified",
            "awaiting_approval",
            "processing",
            "completed",
            "rejected",
            "failed",
        ],
        "PartStatusEnum": ["pending", "running", "done", "failed", "skipped"],
    },
}

# /metrics (config/ops.py): answered only with this Bearer token; unset, the route answers 404. Under gunicorn,
# PROMETHEUS_MULTIPROC_DIR (read by prometheus-client itself) holds every process's values; a management command or
# a worker started with it set writes there too, so the directory is made here rather than failing the first count.
ASSENT_METRICS_TOKEN = env("ASSENT_METRICS_TOKEN", "")
if env("PROMETHEUS_MULTIPROC_DIR", ""):
    Path(env("PROMETHEUS_MULTIPROC_DIR")).mkdir(parents=True, exist_ok=True)

# Logs: one JSON object per line (python-json-logger), on standard error. assent.requests and assent.tasks write a
# line per request and per task run (config/requestlog.py) at INFO, whatever the root level; ASSENT_ACCESS_LOG=0
# silences them.
_line_level = "INFO" if envbool("ASSENT_ACCESS_LOG", True) else "WARNING"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        }
    },
    "filters": {"paths_withheld": {"()": "config.logs.PathsWithheld"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "WARNING")},
    "loggers": {
        "assent.requests": {"level": _line_level},
        "assent.tasks": {"level": _line_level},
        "django.request": {"filters": ["paths_withheld"]},
        "django.security": {"filters": ["paths_withheld"]},
    },
}
