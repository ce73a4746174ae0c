"""Spyglass settings: one file, every value from the environment (see README.md for the table).

The defaults run a fresh clone on one machine: SQLite under var/, no Redis (an embedded Celery
worker inside the web process), DEBUG off (DEBUG=1 asks for it). Production sets DATABASE_URL,
REDIS_URL and SECRET_KEY.
"""

from __future__ import annotations

import base64
import json
import math
import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

VAR_DIR = Path(env.str("SPYGLASS_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- DEBUG and the secret key --------------------------------------------------------------
# Off unless asked (DEBUG=1): the debug page shows settings and code to whoever triggers an
# error, and turns outages into 500s (webapp/errors.py answers them whatever DEBUG is).
DEBUG = env.bool("DEBUG", default=False)
# Without SECRET_KEY a key is generated once into var/ (sessions survive restarts of `make
# run`). `manage.py serve` and gunicorn.conf.py refuse to listen beyond loopback on such a key:
# every server of a deployment needs the same one, set in the environment.
SPYGLASS_SECRET_KEY_GENERATED = not env.str("SECRET_KEY", default="")


def _secret_key() -> str:
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "template_partials",
    "webapp",
    "tracking",
    "playground",
    "evaluation",
    "access",
]

MIDDLEWARE = [
    # Outermost, so it sees every 500: a database outage answers 503 + Retry-After even in
    # DEBUG, where Django would show its debug page (webapp/errors.py).
    "webapp.errors.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Before anything reads a body (sessions, CSRF): oversized ones are refused unread.
    "webapp.limits.RequestSizeLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "webapp.auth.AuthRequiredMiddleware",
]

# --- Security headers ---------------------------------------------------------------------

# Span contents are whatever an LLM or an attacker put there. Templates escape them; the CSP
# is the second wall: no inline or foreign scripts run even if something slipped through.
# Style attributes stay allowed (bar widths, SVG charts): they cannot run code, while <style>
# elements and foreign stylesheets are refused.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "style-src-elem": ["'self'"],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
X_FRAME_OPTIONS = "DENY"  # frame-ancestors for browsers that predate it
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
# The token reaches htmx through the page (hx-headers), never through the cookie from JS.
CSRF_COOKIE_HTTPONLY = True
# Served over HTTPS (directly or behind a proxy that sets X-Forwarded-Proto): cookies only
# over TLS, HSTS, and plain-HTTP page requests redirected.
SPYGLASS_HTTPS = env.bool("SPYGLASS_HTTPS", default=False)
if env.bool("SPYGLASS_BEHIND_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if SPYGLASS_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
# Failed logins allowed per client address, and per username, before a pause (429).
SPYGLASS_LOGIN_RATE = env.str("SPYGLASS_LOGIN_RATE", default="10/10m")
# --- Client addresses behind a proxy -------------------------------------------------------
# The reverse proxies (addresses or networks) whose X-Forwarded-For names the client, for the
# login limits; from anyone else the header is ignored, or a client could pick its address.
SPYGLASS_TRUSTED_PROXIES = env.list("SPYGLASS_TRUSTED_PROXIES", default=[])

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"
ASGI_APPLICATION = "webapp.asgi.application"

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
                "access.context_processors.access",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'spyglass.sqlite3'}"),
}
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # Our subclass only lifts Django's 999-variable assumption (see webapp/db/sqlite3).
    _db["ENGINE"] = "webapp.db.sqlite3"
    _db.setdefault("OPTIONS", {}).update(
        {
            # WAL lets the web process read while the worker writes; the busy timeout makes
            # a writer wait for the lock instead of failing with "database is locked";
            # IMMEDIATE takes the write lock at BEGIN, so two writers queue rather than
            # deadlock on a read-to-write upgrade.
            # A 32 MB page cache keeps the span indexes hot while large traces arrive.
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; "
                "PRAGMA cache_size=-32768;"
            ),
            "timeout": env.int("SQLITE_BUSY_TIMEOUT", default=20),
            "transaction_mode": "IMMEDIATE",
        }
    )
    if env.bool("SPYGLASS_SQLITE_TEST_FILE", default=False):
        # The test database in a file rather than in memory, so that other processes (a
        # Celery worker on Redis) can share it; CI's SQLite run sets this.
        _db["TEST"] = {"NAME": str(VAR_DIR / "test_spyglass.sqlite3")}
# Reused connections: a new one costs PRAGMAs and a cold page cache (SQLite) or a login
# (PostgreSQL) on every request.
_db.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
_db["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Logins for pages, Basic/Bearer for the APIs (webapp/auth.py). On by default; `manage.py
# serve` turns it off only when it listens on loopback and SPYGLASS_AUTH is not set.
SPYGLASS_AUTH = env.bool("SPYGLASS_AUTH", default=True)
SPYGLASS_AUTH_EXPLICIT = "SPYGLASS_AUTH" in env.ENVIRON
# A user without a role of their own (access/models.py) has this one: viewer, editor or admin.
# Editor keeps a team's existing accounts logging traces; superusers are always admins.
SPYGLASS_DEFAULT_ROLE = env.str("SPYGLASS_DEFAULT_ROLE", default="editor")
if SPYGLASS_DEFAULT_ROLE not in ("viewer", "editor", "admin"):
    raise ImproperlyConfigured("SPYGLASS_DEFAULT_ROLE must be viewer, editor or admin.")
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- Static files and artifacts -----------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root on every start
STATICFILES_DIRS = [BASE_DIR / "static"]

ARTIFACT_ROOT = Path(env.str("SPYGLASS_ARTIFACT_ROOT", default=str(VAR_DIR / "artifacts")))
STORAGES = {
    "default": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": ARTIFACT_ROOT},
    },
    # Plain storage in DEBUG; hashed and compressed files (served by whitenoise) otherwise.
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "webapp.static_storage.StaticFilesStorage"
        ),
    },
}
# --- Static files without collectstatic ------------------------------------------------------
# `make run` keeps DEBUG off on a fresh clone that never ran collectstatic: a file missing
# from the manifest is linked by its plain name (webapp/static_storage.py), and whitenoise
# finds it in the source folders. Production collects (Dockerfile, Procfile's release) and
# gets the hashed names.
WHITENOISE_USE_FINDERS = True
# Artifacts on S3-compatible object storage (AWS, MinIO, R2, ...) instead of the local disk,
# so that web processes and workers on several machines share them. Needs the `s3` extra
# (`pip install '.[s3]'`); credentials come the usual boto3 way (AWS_ACCESS_KEY_ID, ...).
if env.str("SPYGLASS_ARTIFACT_STORAGE", default="filesystem") == "s3":
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("SPYGLASS_S3_BUCKET"),
            "location": env.str("SPYGLASS_S3_PREFIX", default="artifacts"),
            "endpoint_url": env.str("SPYGLASS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("SPYGLASS_S3_REGION", default="") or None,
            "file_overwrite": True,  # artifact paths are chosen by the client, as in MLflow
        },
    }
# Artifact uploads (models, code, traces.json) are streamed to storage; bigger ones get 413.
SPYGLASS_MAX_ARTIFACT_BYTES = env.int("SPYGLASS_MAX_ARTIFACT_BYTES", default=1024**3)
# Page forms and the native API take far less than ingest does (see webapp/limits.py).
SPYGLASS_MAX_PAGE_BYTES = env.int("SPYGLASS_MAX_PAGE_BYTES", default=2 * 1024 * 1024)
# A span's inputs, outputs, events (and each attribute value) are stored up to this many
# bytes of JSON; a bigger one is replaced by a marker with its size and its beginning.
SPYGLASS_MAX_SPAN_FIELD_BYTES = env.int("SPYGLASS_MAX_SPAN_FIELD_BYTES", default=1024 * 1024)


def _model_prices(text: str) -> dict[str, dict[str, float]]:
    """SPYGLASS_MODEL_PRICES checked at startup: a typo fails loudly here, not as a cost
    silently missing from every trace."""
    if not text.strip():
        return {}
    problem = 'SPYGLASS_MODEL_PRICES must be JSON like {"my-model": {"input": 0.2, "output": 0.6}}'
    try:
        prices = json.loads(text)
    except ValueError:
        raise ImproperlyConfigured(problem) from None
    if not isinstance(prices, dict):
        raise ImproperlyConfigured(problem)
    for model, price in prices.items():
        if not isinstance(price, dict) or not price or set(price) - {"input", "output"}:
            raise ImproperlyConfigured(f"{problem} ({model!r})")
        for value in price.values():
            if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
                raise ImproperlyConfigured(f"{problem} ({model!r}: dollars per million tokens)")
    return prices


# Prices of self-hosted (or privately priced) models, in dollars per million tokens, as JSON:
# {"my-llama": {"input": 0.2, "output": 0.6}}. They win over the genai-prices library's.
SPYGLASS_MODEL_PRICES = _model_prices(env.str("SPYGLASS_MODEL_PRICES", default=""))
# Spans one OTLP request may carry (exporters send batches of 512 by default). Their Python
# objects, not the body, are what a request of many tiny spans costs: with this cap and the
# 32 MB body cap, six concurrent maximal requests fit the memory README.md plans per web worker.
SPYGLASS_OTLP_MAX_SPANS = env.int("SPYGLASS_OTLP_MAX_SPANS", default=20_000)
# Artifacts (models, code) are uploaded through the MLflow API and can be large.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=32 * 1024 * 1024)

# --- Celery -------------------------------------------------------------------------------

REDIS_URL = env.str("REDIS_URL", default="")
# With no broker configured, tasks travel through kombu's in-memory transport to a worker
# thread inside the web process (webapp/embedded_worker.py): still real Celery, never eager.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
# Results are kept only with Redis (health checks and tests read them); the UI never reads
# them: the rows a task updates are its outcome.
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL) or None
SPYGLASS_EMBEDDED_WORKER = env.bool(
    "SPYGLASS_EMBEDDED_WORKER", default=CELERY_BROKER_URL.startswith("memory://")
)
SPYGLASS_EMBEDDED_CONCURRENCY = env.int("SPYGLASS_EMBEDDED_CONCURRENCY", default=4)
# Worker tasks an evaluation launched from the browser takes at once; each keeps
# SPYGLASS_EVALUATION_CONCURRENCY agent calls in flight (agents mostly wait on the network).
SPYGLASS_EVALUATION_WORKERS = env.int("SPYGLASS_EVALUATION_WORKERS", default=2)
SPYGLASS_EVALUATION_CONCURRENCY = env.int("SPYGLASS_EVALUATION_CONCURRENCY", default=8)
# An agent call may take minutes; past the soft limit the task gets SoftTimeLimitExceeded and
# records a failed run, the hard limit kills it.
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=300)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=330)
# Acknowledge a message after the task ran, not when a worker took it: a worker that dies
# mid-task leaves it on the broker for another worker. Tasks are idempotent (they claim their
# row with a conditional UPDATE), so a second run is harmless.
CELERY_TASK_ACKS_LATE = True
# ...and when the worker process is killed (OOM, SIGKILL), requeue instead of dropping.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per worker process: agent calls are long and uneven, and prefetching
# would park messages behind a slow call while other workers sit idle.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis hands an unacknowledged message to another worker after this many seconds. It
    # must outlast the hard time limit, or a long task that is still running gets a twin.
    "visibility_timeout": CELERY_TASK_TIME_LIMIT * 2,
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
}
if CELERY_BROKER_URL.startswith("memory://"):
    # The in-memory transport polls its queues; kombu's default of 1 s would add up to a
    # second to every playground answer.
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = 0.01
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"socket_connect_timeout": 3, "socket_timeout": 10}
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=3.0)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Sending while the broker is down should fail the request within seconds (the page says so)
# instead of hanging it in reconnect loops.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
CELERY_RESULT_EXPIRES = 3600
# While Redis is down, whatever still talks to the result backend gives up within a second
# instead of Celery's default of 20 retries a second apart (a request held for 19 s).
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS["retry_policy"] = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
# Periodic work, run by `celery -A webapp beat` (or, under `make run`, a beat thread beside
# the embedded worker). Each task is safe to run twice, so two beats only waste a little work.
CELERY_BEAT_SCHEDULE = {
    "delete-old-traces": {"task": "tracking.delete_old_traces", "schedule": 3600.0},
    # Playground runs whose worker was lost (or whose message was) end failed, not "running".
    "reap-stale-playground-runs": {"task": "playground.reap_stale_runs", "schedule": 60.0},
    # Trace metrics read hourly rollups; a read refreshes them too, this keeps reads quick.
    "refresh-trace-rollups": {"task": "tracking.refresh_trace_rollups", "schedule": 60.0},
    # Evaluation rows held by a worker that died go back to the others (evaluation/runner.py).
    "reap-evaluations": {"task": "evaluation.reap", "schedule": 15.0},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
# Traces older than this many days are deleted hourly, in batches; 0 keeps them forever.
SPYGLASS_TRACE_RETENTION_DAYS = env.int("SPYGLASS_TRACE_RETENTION_DAYS", default=0)
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --- Logging ------------------------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Any cache use is shared through Redis when there is one. Nothing a login needs is cached:
# the login limits count in the database (webapp/login_limits.py), so they hold while Redis
# is down.
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

REST_FRAMEWORK = {
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.auth.HeaderAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["webapp.auth.IsAuthenticatedWhenAuthOn"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Spyglass API",
    "DESCRIPTION": "Traces, spans, logged models and experiments stored by Spyglass.",
    "VERSION": "1",
    # 3.1 (JSON Schema 2020-12) for `propertyNames`: tag keys have rules of their own (not
    # empty, at most 250 characters), which 3.0 cannot state, so generated clients and
    # schemathesis would send keys the API refuses.
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Playground ---------------------------------------------------------------------------

# A streaming answer is written to its row at most once per this many seconds.
SPYGLASS_PLAYGROUND_WRITE_INTERVAL_S = env.float(
    "SPYGLASS_PLAYGROUND_WRITE_INTERVAL_S", default=0.1
)
# A run still queued after this long was never picked up (no worker, a lost message): failed.
SPYGLASS_PLAYGROUND_QUEUED_TIMEOUT_S = env.int("SPYGLASS_PLAYGROUND_QUEUED_TIMEOUT_S", default=600)
# A running answer marks itself alive this often; one silent for STALE_AFTER lost its worker
# (killed, OOM) and the reaper fails it with that explanation.
SPYGLASS_PLAYGROUND_HEARTBEAT_S = env.float("SPYGLASS_PLAYGROUND_HEARTBEAT_S", default=10.0)
SPYGLASS_PLAYGROUND_STALE_AFTER_S = env.float("SPYGLASS_PLAYGROUND_STALE_AFTER_S", default=60.0)
# Logged-model agents load a model's logged code into the worker and run it: off by default.
SPYGLASS_PLAYGROUND_LOGGED_MODELS = env.bool("SPYGLASS_PLAYGROUND_LOGGED_MODELS", default=False)
# Where a worker reaches this Spyglass: a logged model's mlflow client reads its registry and
# artifacts there and exports its spans to <url>/v1/traces (playground/agents/mlflow_env.py).
# Unset, `manage.py serve` sets it to the address it binds (its embedded worker is in the same
# process); a separate `celery worker` needs it when Spyglass is not at http://127.0.0.1:8000.
SPYGLASS_INTERNAL_URL_EXPLICIT = "SPYGLASS_INTERNAL_URL" in env.ENVIRON
SPYGLASS_INTERNAL_URL = env.str("SPYGLASS_INTERNAL_URL", default="http://127.0.0.1:8000")

# --- Playground: where agents may be called, and their keys (webapp/egress.py, vault.py) ------

# Hosts agents (and later judges) may be called on: names, *.suffix, IPs, CIDRs. Empty: any
# host; with logins on, link-local and cloud metadata addresses are still refused unless
# listed, since a user's agent URL must not read the server's cloud credentials (SSRF).
SPYGLASS_AGENT_HOSTS = env.list("SPYGLASS_AGENT_HOSTS", default=[])
# Environment variables an agent's `api_key_env` may name. Empty: none. The server's own
# secrets (SECRET_KEY, DATABASE_URL, ...) are refused even when listed (webapp/egress.py).
SPYGLASS_AGENT_ENV_ALLOW = env.list("SPYGLASS_AGENT_ENV_ALLOW", default=[])


def _secrets_keys() -> list[str]:
    """Fernet keys for stored API keys (the first encrypts, all decrypt: rotation). Where
    SECRET_KEY is generated (`make run`, loopback only), a key generated once into var/ as
    well; a deployment that sets SECRET_KEY sets this too, or storing a key says it is missing
    (agents that use api_key_env still work)."""
    keys = env.list("SPYGLASS_SECRETS_KEY", default=[])
    if keys or not SPYGLASS_SECRET_KEY_GENERATED:
        return keys
    path = VAR_DIR / "secrets_key"
    try:
        # Created readable by its owner only, and by one process: a second one reads it.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as file:
            file.write(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
    return [path.read_text().strip()]


SPYGLASS_SECRETS_KEY = _secrets_keys()
