"""KeGuan settings.

Every setting can be overridden by an environment variable of the same name (12-factor);
the defaults are the embedded ones, so `make run` works on a fresh machine with nothing else.
Secrets are never defaulted to a fixed value: SECRET_KEY is generated once into `instance/`.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

from flask_appbuilder.const import AUTH_DB

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("CRM_INSTANCE_DIR", BASE_DIR / "instance"))


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _instance_secret(filename: str) -> str:
    """A random secret kept in `instance/`, created on first use, for the embedded setup."""
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    path = INSTANCE_DIR / filename
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


def database_url() -> str:
    """DATABASE_URL, with the usual short schemes mapped to the drivers we ship."""
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'keguan.db'}"
    for short, full in (
        ("postgres://", "postgresql+psycopg://"),
        ("postgresql://", "postgresql+psycopg://"),
        ("mysql://", "mysql+pymysql://"),
        ("mariadb://", "mysql+pymysql://"),
    ):
        if url.startswith(short):
            return full + url[len(short) :]
    return url


# --- Application ---------------------------------------------------------------------------
APP_NAME = os.environ.get("CRM_APP_NAME", "客管 KeGuan")
APP_ICON = "/static/crm/logo.svg"
APP_THEME = ""
FAB_BASE_TEMPLATE = "crm/base.html"
FAB_INDEX_VIEW = "views.home.HomeView"
FAB_SECURITY_MANAGER_CLASS = "app.security.CrmSecurityManager"
FAB_API_SWAGGER_UI = True
FAB_ADD_SECURITY_API = True
FAB_CREATE_DB = False  # Alembic owns the schema (flask db upgrade)
# Permissions are synced by `flask crm init` (after migrations), not at every start-up
FAB_UPDATE_PERMS = _env_bool("FAB_UPDATE_PERMS", False)
FAB_API_MAX_PAGE_SIZE = 100
SECRET_KEY = os.environ.get("SECRET_KEY") or _instance_secret("secret_key")

# --- Database ------------------------------------------------------------------------------
SQLALCHEMY_DATABASE_URI = database_url()
SQLALCHEMY_TRACK_MODIFICATIONS = False


def _json_dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def engine_options(uri: str) -> dict:
    """SQLAlchemy engine options for a database URL (create_app applies them)."""
    # JSON as written (不转义): custom values stay readable in the database, and text filters on
    # them (a multi-select's "contains") match the characters users type
    options: dict = {"pool_pre_ping": True, "json_serializer": _json_dumps}
    if uri.startswith("postgresql+psycopg"):
        # No server-side prepared statements: after five runs psycopg would prepare a search
        # and PostgreSQL would switch to a generic plan, which cannot use the trigram index for
        # a LIKE pattern it does not know (measured: 50 ms -> 600 ms). Safe behind pgbouncer too.
        options["connect_args"] = {"prepare_threshold": None}
    return options


SQLALCHEMY_ENGINE_OPTIONS = engine_options(SQLALCHEMY_DATABASE_URI)
# How far list pages count before they show "N+" (an exact COUNT(*) over a million rows is too slow)
CRM_COUNT_CAP = int(os.environ.get("CRM_COUNT_CAP", "10000"))
# The most rows one CSV export writes
CRM_EXPORT_MAX = int(os.environ.get("CRM_EXPORT_MAX", "100000"))
#: attachments of file fields live here, outside the database (back it up with the database)
CRM_UPLOAD_DIR = os.environ.get("CRM_UPLOAD_DIR", str(INSTANCE_DIR / "uploads"))
#: the largest request body accepted (a file field allows at most 100 MB per file)
MAX_CONTENT_LENGTH = int(os.environ.get("CRM_MAX_REQUEST_MB", "110")) * 1024 * 1024

# --- Security ------------------------------------------------------------------------------
AUTH_TYPE = AUTH_DB
AUTH_ROLE_ADMIN = "Admin"
AUTH_ROLE_PUBLIC = "Public"
AUTH_USER_REGISTRATION = False
AUTH_RATE_LIMITED = True
AUTH_RATE_LIMIT = os.environ.get("CRM_LOGIN_RATE_LIMIT", "10 per 20 second")
RATELIMIT_ENABLED = _env_bool("RATELIMIT_ENABLED", True)
REDIS_URL = os.environ.get("REDIS_URL", "")
RATELIMIT_STORAGE_URI = REDIS_URL or "memory://"
FAB_PASSWORD_COMPLEXITY_ENABLED = True
WTF_CSRF_ENABLED = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", _env_bool("CRM_HTTPS", False))
PERMANENT_SESSION_LIFETIME = int(os.environ.get("CRM_SESSION_SECONDS", str(8 * 3600)))
# --- Login and API security (app/login.py, app/mfa.py, app/tokens.py, app/ratelimit.py) ---
# Passwords: at least this long, with this many of lower/upper/digits/symbols, not the username
CRM_PASSWORD_MIN_LENGTH = int(os.environ.get("CRM_PASSWORD_MIN_LENGTH", "10"))
CRM_PASSWORD_MIN_CLASSES = int(os.environ.get("CRM_PASSWORD_MIN_CLASSES", "3"))
# Lock-out: this many failed logins (passwords or MFA codes) in a row lock the account this long
CRM_LOGIN_MAX_FAILURES = int(os.environ.get("CRM_LOGIN_MAX_FAILURES", "5"))
CRM_LOGIN_LOCK_MINUTES = int(os.environ.get("CRM_LOGIN_LOCK_MINUTES", "15"))
# Roles that require MFA when the built-in roles are first synced (an admin may change it later)
CRM_MFA_REQUIRED_ROLES = [
    r.strip() for r in os.environ.get("CRM_MFA_REQUIRED_ROLES", "Admin,Finance").split(",") if r.strip()
]
CRM_MFA_ISSUER = os.environ.get("CRM_MFA_ISSUER", "KeGuan")
# Rate limits (flask-limiter syntax); RATELIMIT_ENABLED=false turns every limit off (benchmarks)
CRM_API_RATE_LIMIT = os.environ.get("CRM_API_RATE_LIMIT", "600 per minute")  # per user, token or IP
CRM_API_LOGIN_RATE_LIMIT = os.environ.get("CRM_API_LOGIN_RATE_LIMIT", AUTH_RATE_LIMIT)  # per IP
CRM_PUBLIC_FORM_RATE_LIMIT = os.environ.get("CRM_PUBLIC_FORM_RATE_LIMIT", "5 per minute")  # per IP
RATELIMIT_KEY_PREFIX = os.environ.get("RATELIMIT_KEY_PREFIX", "keguan")
RATELIMIT_HEADERS_ENABLED = True  # Retry-After (and X-RateLimit-*) on limited endpoints
# Personal API tokens (Bearer kg_...) pass FAB's API-key check in protect() (app/security.py)
FAB_API_KEY_ENABLED = True
# Sessions: permanent (so PERMANENT_SESSION_LIFETIME is an idle timeout); cookies secure on HTTPS
SESSION_REFRESH_EACH_REQUEST = True
REMEMBER_COOKIE_HTTPONLY = True
REMEMBER_COOKIE_SAMESITE = "Lax"
REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
# --- Encryption at rest (app/crypto.py; README "Encryption at rest") ---
# The current key (base64 of 32 bytes); older keys still read until `flask crm rotate-key` ran
CRM_ENCRYPTION_KEY = os.environ.get("CRM_ENCRYPTION_KEY", "")
CRM_ENCRYPTION_KEYS = os.environ.get("CRM_ENCRYPTION_KEYS", "")  # comma-separated, base64
# The key of the blind indexes (exact-match search on encrypted values); never rotated casually
CRM_BLIND_INDEX_KEY = os.environ.get("CRM_BLIND_INDEX_KEY", "")
# Without the keys above and on SQLite, keys are generated here on first use (back them up)
CRM_KEY_DIR = os.environ.get("CRM_KEY_DIR", str(INSTANCE_DIR))
# Set when serving over HTTPS (the reverse proxy or run.py --cert): adds HSTS
CRM_HTTPS = _env_bool("CRM_HTTPS", False)
#: reverse proxies in front of the app (nginx: 1): their X-Forwarded-For/-Proto/-Host are trusted,
#: so client IPs (audit, rate limits) and https:// are the real ones; 0 trusts no such header
CRM_PROXIES = int(os.environ.get("CRM_PROXIES", "0"))
#: Content-Security-Policy of every response. Scripts and styles only from the app itself (no CDN:
#: plotly.js is served by the app); 'unsafe-inline' because Flask-AppBuilder's own templates carry
#: inline scripts and handlers; data: images for QR codes and plotly's exports.
CRM_CONTENT_SECURITY_POLICY = os.environ.get(
    "CRM_CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'self'",
)

# --- Language ------------------------------------------------------------------------------
CRM_LOCALE = os.environ.get("CRM_LOCALE", "zh_CN")
BABEL_DEFAULT_LOCALE = "zh" if CRM_LOCALE.startswith("zh") else "en"
BABEL_DEFAULT_TIMEZONE = os.environ.get("CRM_TIMEZONE", "Asia/Shanghai")
# FAB puts its own catalogues first; ours come after and override them
BABEL_TRANSLATION_DIRECTORIES = str(BASE_DIR / "app" / "translations")
LANGUAGES = {
    "zh": {"flag": "cn", "name": "中文"},
    "en": {"flag": "gb", "name": "English"},
}

# --- Reminders and e-mail, sent by the background worker (flask crm worker) -----------------
# A task's reminder goes out this many minutes before its due time (in-app and by e-mail)
CRM_REMINDER_LEAD_MINUTES = int(os.environ.get("CRM_REMINDER_LEAD_MINUTES", "15"))
# The address users open KeGuan at: links in e-mails start with it
CRM_BASE_URL = os.environ.get("CRM_BASE_URL", "http://127.0.0.1:8080")
# SMTP server of the outbox; empty: no mail is sent, messages wait in the outbox until it is set
CRM_SMTP_HOST = os.environ.get("CRM_SMTP_HOST", "")
CRM_SMTP_PORT = int(os.environ.get("CRM_SMTP_PORT", "25"))
CRM_SMTP_USER = os.environ.get("CRM_SMTP_USER", "")
CRM_SMTP_PASSWORD = os.environ.get("CRM_SMTP_PASSWORD", "")
CRM_SMTP_STARTTLS = _env_bool("CRM_SMTP_STARTTLS", False)  # STARTTLS on a plain port (587)
CRM_SMTP_SSL = _env_bool("CRM_SMTP_SSL", False)  # TLS from the first byte (port 465)
CRM_MAIL_FROM = os.environ.get("CRM_MAIL_FROM", "keguan@localhost")
# A message that keeps failing is tried this many times (waits 1, 2, 4 ... up to 240 minutes
# between attempts), then marked failed; an admin can queue it again in the outbox screen
CRM_MAIL_MAX_ATTEMPTS = int(os.environ.get("CRM_MAIL_MAX_ATTEMPTS", "10"))

# --- Service desk: SLA, the public support pages, surveys (app/sla.py, app/support.py, app/surveys.py)
# The public address of /support/... in mails to customers (empty: CRM_BASE_URL)
CRM_SUPPORT_SITE_URL = os.environ.get("CRM_SUPPORT_SITE_URL", "")
# The public form's human check: at least this many seconds to fill it in, at most this long old
CRM_SUPPORT_MIN_FILL_SECONDS = int(os.environ.get("CRM_SUPPORT_MIN_FILL_SECONDS", "3"))
CRM_SUPPORT_CHECK_MAX_SECONDS = int(os.environ.get("CRM_SUPPORT_CHECK_MAX_SECONDS", "7200"))
# A survey rating at or below this creates a follow-up task, due this many hours later
CRM_SURVEY_LOW_RATING = int(os.environ.get("CRM_SURVEY_LOW_RATING", "2"))
CRM_SURVEY_FOLLOWUP_HOURS = int(os.environ.get("CRM_SURVEY_FOLLOWUP_HOURS", "24"))

# --- Customer classification, recomputed daily by the worker (flask crm classify) -----------
# Purchase frequency: purchases (won deals, later approved orders) within the window; at least
# HIGH is 高频, at least MID 中频, fewer 低频
CRM_FREQUENCY_WINDOW_DAYS = int(os.environ.get("CRM_FREQUENCY_WINDOW_DAYS", "365"))
CRM_FREQUENCY_HIGH = int(os.environ.get("CRM_FREQUENCY_HIGH", "6"))
CRM_FREQUENCY_MID = int(os.environ.get("CRM_FREQUENCY_MID", "2"))
# The company's own city (6-digit code, e.g. 370500 东营市): customers there are 本地, others
# 外地; empty: local/remote is not computed
CRM_HOME_CITY = os.environ.get("CRM_HOME_CITY", "")

# --- Orders and contracts (app/orders.py) --------------------------------------------------------
# Numbers of new orders and contracts: {date:...} is the order date, {seq:04d} counts per day
CRM_ORDER_NUMBER_PATTERN = os.environ.get("CRM_ORDER_NUMBER_PATTERN", "DD-{date:%Y%m%d}-{seq:04d}")
CRM_CONTRACT_NUMBER_PATTERN = os.environ.get("CRM_CONTRACT_NUMBER_PATTERN", "HT-{date:%Y%m%d}-{seq:04d}")
# The signed contract file: allowed extensions (comma separated) and the largest size in MB
CRM_CONTRACT_FILE_TYPES = os.environ.get("CRM_CONTRACT_FILE_TYPES", "pdf,jpg,jpeg,png,doc,docx").split(",")
CRM_CONTRACT_FILE_MB = int(os.environ.get("CRM_CONTRACT_FILE_MB", "20"))

# --- Backups (app/backup.py: flask crm backup / restore; the worker's daily job at 04:00) ---
# Where backups are written, and how many of the newest the worker keeps there
CRM_BACKUP_DIR = os.environ.get("CRM_BACKUP_DIR", str(INSTANCE_DIR / "backups"))
CRM_BACKUP_KEEP = int(os.environ.get("CRM_BACKUP_KEEP", "14"))

# --- Service desk (app/service.py, app/assignment.py) ---------------------------------------------
# Tickets no assignment rule matches go to the queue of the department of this name (empty: they
# stay unassigned, with no team); either way they wait, status new, for someone to take them
CRM_SERVICE_DEFAULT_DEPARTMENT = os.environ.get("CRM_SERVICE_DEFAULT_DEPARTMENT", "")
# Ticket numbers: this prefix ({date:...} is the local day) and a daily sequence (GD-20261124-0001)
CRM_TICKET_NUMBER_PREFIX = os.environ.get("CRM_TICKET_NUMBER_PREFIX", "GD-{date:%Y%m%d}-")
# Ticket attachments: allowed extensions (comma separated) and the largest size in MB
CRM_TICKET_FILE_TYPES = os.environ.get(
    "CRM_TICKET_FILE_TYPES", "pdf,jpg,jpeg,png,gif,doc,docx,xls,xlsx,txt,zip"
).split(",")
CRM_TICKET_FILE_MB = int(os.environ.get("CRM_TICKET_FILE_MB", "10"))
