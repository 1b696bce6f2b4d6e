"""Works offline: headless Chromium visits every menu entry as Admin and fails on a console
error, a page error, a server error or any request that leaves the server (CDN, web fonts,
Google Charts, the Swagger validator badge...).

The server is the test app on a real socket (werkzeug, background thread). Chromium reaches it
under a name that is not loopback (HOST, mapped to 127.0.0.1 inside Chromium only), as a user on
the LAN would: front-end code that only phones home for non-local hosts is caught too. Every
other host name fails to resolve inside Chromium, so the test never touches the network even on
a connected CI machine. Screenshots go to a pytest temp dir, printed with `-s`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from flask import Flask, got_request_exception
from playwright.sync_api import ConsoleMessage, Error, Page, Request, Response, sync_playwright
from werkzeug.serving import make_server

from app.contacts_helpers import noop  # noqa: F401  placeholder removed below
