#!/usr/bin/env bash
# Set up (scripts/setup.sh), create a demo tenant and key, and run LEO Optima on http://127.0.0.1:8000
# (scripts/serve.sh: DEBUG off; `make dev`, i.e. LEO_DEV=1, turns it on and reloads on changes).
# With no LEO_UPSTREAM_URL, a clearly labelled demo upstream (the fake upstream) answers on :8765.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

PORT="${PORT:-8000}"
if [ -z "${LEO_UPSTREAM_URL:-}" ] && ! grep -q '^LEO_UPSTREAM_URL=.' .env 2>/dev/null; then
  DEMO_PORT="${LEO_DEMO_UPSTREAM_PORT:-8765}"
  echo "No LEO_UPSTREAM_URL set: starting the DEMO upstream (fake answers, not a real LLM) on :$DEMO_PORT"
  .venv/bin/python manage.py fake_upstream --port "$DEMO_PORT" &
  DEMO_PID=$!
  trap 'kill $DEMO_PID 2>/dev/null || true' EXIT
fi

KEY=$(.venv/bin/python manage.py demo --quiet | tail -n 1)
cat <<TXT

  LEO Optima is starting on http://127.0.0.1:$PORT
  Demo tenant: demo     Demo API key (shown once): $KEY
  Portal: http://127.0.0.1:$PORT/portal/     Admin: http://127.0.0.1:$PORT/admin/ (manage.py createsuperuser;
          staff set up an authenticator app at first sign-in)
  Mail (sign-up, password-reset and invitation links) is written to files in ${EMAIL_FILE_PATH:-var/mail/}

  Try it:
    curl http://127.0.0.1:$PORT/v1/chat/completions -H "Authorization: Bearer $KEY" \\
      -H 'Content-Type: application/json' \\
      -d '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}'
  or, with the openai SDK:  OpenAI(base_url="http://127.0.0.1:$PORT/v1", api_key="$KEY")

TXT
PORT="$PORT" scripts/serve.sh
