#!/bin/sh
# Print .env.example with fresh random secrets filled in: sh deploy/make-env.sh > .env
# Needs only openssl. Every value it makes is letters, digits, '-' and '_' so it is URL-safe.
set -eu
here="$(cd "$(dirname "$0")/.." && pwd)"

rand_hex() { openssl rand -hex "$1"; }
# A Fernet key is 32 random bytes in URL-safe base64.
fernet_key() { openssl rand -base64 32 | tr '+/' '-_'; }

secret_key="$(rand_hex 40)"
pepper="$(rand_hex 32)"
fernet="$(fernet_key)"
pg_password="$(rand_hex 24)"
grafana_password="$(rand_hex 16)"

sed \
    -e "s|^DJANGO_SECRET_KEY=.*|DJANGO_SECRET_KEY=$secret_key|" \
    -e "s|^LEO_KEY_PEPPER=.*|LEO_KEY_PEPPER=$pepper|" \
    -e "s|^LEO_ENCRYPTION_KEYS=.*|LEO_ENCRYPTION_KEYS=$fernet|" \
    -e "s|^POSTGRES_PASSWORD=.*|POSTGRES_PASSWORD=$pg_password|" \
    -e "s|^DATABASE_URL=.*|DATABASE_URL=postgres://leo:$pg_password@localhost:5432/leo|" \
    -e "s|^GRAFANA_ADMIN_PASSWORD=.*|GRAFANA_ADMIN_PASSWORD=$grafana_password|" \
    "$here/.env.example"
