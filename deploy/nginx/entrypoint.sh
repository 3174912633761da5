#!/bin/sh
# Render deploy/nginx/leo.conf.template and make a self-signed certificate on first start.
#
# Real certificates: mount them at $LEO_TLS_CERT and $LEO_TLS_KEY (default
# /etc/nginx/certs/tls.crt and tls.key); the script only generates a pair when either is missing.
# The same script renders the config for the native topology test: point LEO_NGINX_TEMPLATE,
# LEO_NGINX_CONF_OUT and the LEO_* ports/paths elsewhere and pass the command to run (or `true`).
set -eu

: "${LEO_HTTP_PORT:=80}"
: "${LEO_HTTPS_PORT:=443}"
# The HTTPS port clients see (differs from LEO_HTTPS_PORT when a port mapping changes it).
: "${LEO_PUBLIC_HTTPS_PORT:=$LEO_HTTPS_PORT}"
: "${LEO_SERVER_NAME:=_}"
: "${LEO_UPSTREAM:=web:8000}"
: "${LEO_TLS_CERT:=/etc/nginx/certs/tls.crt}"
: "${LEO_TLS_KEY:=/etc/nginx/certs/tls.key}"
: "${LEO_HSTS_MAX_AGE:=31536000}"
: "${LEO_CLIENT_MAX_BODY_SIZE:=4m}"
: "${LEO_PROXY_READ_TIMEOUT:=300s}"
: "${LEO_ACME_ROOT:=/var/www/acme}"
: "${LEO_ACCESS_LOG:=/dev/stdout}"
: "${LEO_NGINX_TEMPLATE:=/etc/nginx/templates/leo.conf.template}"
: "${LEO_NGINX_CONF_OUT:=/etc/nginx/conf.d/default.conf}"

if [ "$LEO_PUBLIC_HTTPS_PORT" = "443" ]; then
    LEO_HTTPS_PORT_SUFFIX=""
else
    LEO_HTTPS_PORT_SUFFIX=":$LEO_PUBLIC_HTTPS_PORT"
fi

export LEO_HTTP_PORT LEO_HTTPS_PORT LEO_HTTPS_PORT_SUFFIX LEO_SERVER_NAME LEO_UPSTREAM \
    LEO_TLS_CERT LEO_TLS_KEY LEO_HSTS_MAX_AGE LEO_CLIENT_MAX_BODY_SIZE LEO_PROXY_READ_TIMEOUT \
    LEO_ACME_ROOT LEO_ACCESS_LOG

if [ ! -s "$LEO_TLS_CERT" ] || [ ! -s "$LEO_TLS_KEY" ]; then
    # First start without mounted certificates: a self-signed pair for local use only. Clients
    # must trust this certificate explicitly (it is its own CA).
    common_name="$LEO_SERVER_NAME"
    if [ "$common_name" = "_" ] || [ -z "$common_name" ]; then
        common_name="localhost"
    fi
    common_name="${common_name%% *}"
    san="DNS:localhost,IP:127.0.0.1,IP:::1"
    if [ "$common_name" != "localhost" ]; then
        san="DNS:$common_name,$san"
    fi
    mkdir -p "$(dirname "$LEO_TLS_CERT")" "$(dirname "$LEO_TLS_KEY")"
    umask 077
    openssl req -x509 -newkey rsa:2048 -sha256 -nodes -days 825 \
        -subj "/CN=$common_name/O=LEO Optima self-signed" \
        -addext "subjectAltName=$san" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" \
        -addext "extendedKeyUsage=serverAuth" \
        -keyout "$LEO_TLS_KEY" -out "$LEO_TLS_CERT" 2>/dev/null
    chmod 644 "$LEO_TLS_CERT"
    echo "entrypoint: generated a self-signed certificate for $common_name at $LEO_TLS_CERT" >&2
fi

mkdir -p "$(dirname "$LEO_NGINX_CONF_OUT")"
# shellcheck disable=SC2016  # the single-quoted list names variables for envsubst, not the shell
envsubst '${LEO_HTTP_PORT} ${LEO_HTTPS_PORT} ${LEO_HTTPS_PORT_SUFFIX} ${LEO_SERVER_NAME} ${LEO_UPSTREAM} ${LEO_TLS_CERT} ${LEO_TLS_KEY} ${LEO_HSTS_MAX_AGE} ${LEO_CLIENT_MAX_BODY_SIZE} ${LEO_PROXY_READ_TIMEOUT} ${LEO_ACME_ROOT} ${LEO_ACCESS_LOG}' \
    < "$LEO_NGINX_TEMPLATE" > "$LEO_NGINX_CONF_OUT"

if [ "$#" -eq 0 ]; then
    set -- nginx -g "daemon off;"
fi
exec "$@"
