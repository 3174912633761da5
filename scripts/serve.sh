#!/usr/bin/env bash
# Serve LEO Optima with uvicorn on 127.0.0.1:$PORT (default 8000); no setup. `make run` and
# `make dev` end here (scripts/run.sh).
#
# DEBUG is off unless LEO_DEV=1 (`make dev`, which also reloads on code changes): with DEBUG on,
# an unknown URL shows Django's technical page listing every route. WhiteNoise serves the static
# files either way.
#
# X-Forwarded-For is believed only from LEO_TRUSTED_PROXIES (none by default; uvicorn's own
# default trusts loopback, so any local client could otherwise pick its address per request and
# never meet the bad-key throttle).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"

# The same reader as Django's settings and gunicorn's config (it also reads .env, and refuses a
# malformed entry).
TRUSTED=$("$PY" -c 'from leo_optima.settings.env import trusted_proxies; print(",".join(trusted_proxies()))')
args=(leo_optima.asgi:application --host 127.0.0.1 --port "${PORT:-8000}" --no-access-log)
if [ -n "$TRUSTED" ]; then
  args+=(--forwarded-allow-ips "$TRUSTED")
else
  args+=(--no-proxy-headers)
fi
if [ "${LEO_DEV:-0}" = "1" ]; then
  export DJANGO_DEBUG=true
  args+=(--reload)
else
  export DJANGO_DEBUG=false
fi
exec "$PY" -m uvicorn "${args[@]}"
