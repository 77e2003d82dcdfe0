# Shared by scripts/run, scripts/test, scripts/bench and .ci/run.
PYTHON_BIN="${PYTHON:-python3.11}"
command -v "$PYTHON_BIN" >/dev/null 2>&1 || PYTHON_BIN=python3

bootstrap_venv() {
  # Create .venv and install pinned requirements; reinstall only when the requirement files change.
  local stamp=.venv/.requirements.sha256 want
  want=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
  if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON_BIN --version)"
    "$PYTHON_BIN" -m venv .venv
  fi
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    echo "setup: installing requirements"
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -r requirements-dev.txt
    echo "$want" > "$stamp"
  fi
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; }

ensure_services() {
  # Start the machine's PostgreSQL and Redis when they are down (as the machine image starts them).
  if ! pg_up; then
    echo "setup: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  fi
  if ! redis_up; then
    echo "setup: starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || redis-server --daemonize yes --port 6379 --save ""
    for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  fi
  pg_up || { echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2; return 1; }
  redis_up || { echo "Redis is not reachable on 127.0.0.1:6379" >&2; return 1; }
}
