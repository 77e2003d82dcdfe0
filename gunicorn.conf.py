"""gunicorn settings shared by ./scripts/run and the benchmarks (fixed, so runs compare)."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# Two sync workers per core this process may run on. A sync worker sits idle through each Redis or PostgreSQL
# round trip and through gunicorn's graceful close (it waits for the client to close), and with one worker per
# core the cores idled with it: `./scripts/bench claim` on 2 cores left 10-16% of the machine idle during a
# flash drop with 2 workers, 3-10% with 3 and 1-3% with 4. Attempts/s (means of 4-8 runs): 2 workers 2,530,
# 3 workers 2,660, 4 workers 2,830, while /healthz held ~4,500 rps with each; one run with 5 gave 2,470.
cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # Linux / elsewhere
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * cores)
worker_class = "sync"
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "warning")
