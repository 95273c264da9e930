"""gunicorn settings for the portal: threaded workers; port, worker and thread counts from the environment.

The app is not preloaded: each worker imports it after the fork, and the read model opens its DuckDB
connections lazily per thread, so no connection ever crosses a fork.
"""

import os

_port = os.environ.get("PORTAL_PORT", "8000")
bind = _port if ":" in _port else f"127.0.0.1:{_port}"
workers = max(2, int(os.environ.get("PORTAL_WORKERS", "2")))
worker_class = "gthread"
threads = max(1, int(os.environ.get("PORTAL_THREADS", "4")))
preload_app = False
accesslog = "-"
errorlog = "-"
timeout = 30
graceful_timeout = 20
forwarded_allow_ips = "127.0.0.1"
wsgi_app = "webapp.wsgi:app"
