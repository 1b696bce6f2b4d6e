"""Serve KeGuan: `python run.py` (development server; production: gunicorn, see README).

HOST and PORT override 127.0.0.1:8080; --cert/--key serve HTTPS directly.
"""

from __future__ import annotations

import argparse
import os

from app import create_app

app = create_app()


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve KeGuan CRM")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument("--cert", help="TLS certificate (PEM) to serve HTTPS directly")
    parser.add_argument("--key", help="TLS private key (PEM)")
    args = parser.parse_args()
    if bool(args.cert) != bool(args.key):
        parser.error("--cert and --key go together (a PEM certificate and its private key)")
    ssl_context = (args.cert, args.key) if args.cert else None
    if ssl_context:  # HSTS and cookies that never travel over plain HTTP
        app.config.update(CRM_HTTPS=True, SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True)
    scheme = "https" if ssl_context else "http"
    print(f"KeGuan CRM: {scheme}://{args.host}:{args.port}/  (log in as admin; see README)")
    app.run(host=args.host, port=args.port, ssl_context=ssl_context, debug=False, threaded=True)


if __name__ == "__main__":
    main()
