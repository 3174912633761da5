"""Gateway metrics: bounded labels, multiprocess aggregation under real gunicorn workers, the Celery
queue-depth collector against a real Redis, and the Celery worker exporter.

Pure Python: no database. Multiprocess behaviour is checked in subprocesses, since
``PROMETHEUS_MULTIPROC_DIR`` must be set before prometheus_client is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from optimizer import metric_labels, metrics

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample called ``name`` in an exposition, keyed by its sorted labels."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


# --------------------------------------------------------------------------- labels


@pytest.fixture
def fresh_label_state(monkeypatch: pytest.MonkeyPatch) -> None:
    """Isolate the per-process label sets so tests do not depend on each other's tenants."""
    monkeypatch.setattr(metric_labels, "_seen_tenants", set())
    monkeypatch.setattr(metric_labels, "_seen_providers", set())
    monkeypatch.setattr(metric_labels, "_known_models", set(metric_labels._SEED_MODELS))


@pytest.mark.usefixtures("fresh_label_state")
def test_observe_request_counts_with_bounded_labels() -> None:
    before = _sample(
        "leo_requests_total", tenant="acme-corp", model="gpt-4o-mini", technique="exact", status="200"
    )
    saved_before = _sample("leo_dollars_saved_total", tenant="acme-corp", technique="exact")
    tokens_before = _sample("leo_tokens_saved_total", tenant="acme-corp", technique="exact")

    metrics.observe_request("Acme Corp", "GPT-4o-mini", "exact", 200, 120, 0.0042, latency_s=0.003)
    metrics.observe_request("acme-corp", "gpt-4o-mini", "EXACT", "200", 30, 0.001)

    assert _sample(
        "leo_requests_total", tenant="acme-corp", model="gpt-4o-mini", technique="exact", status="200"
    ) == before + 2
    assert _sample("leo_tokens_saved_total", tenant="acme-corp", technique="exact") == tokens_before + 150
    assert _sample("leo_dollars_saved_total", tenant="acme-corp", technique="exact") == pytest.approx(
        saved_before + 0.0052
    )


@pytest.mark.usefixtures("fresh_label_state")
def test_unknown_values_collapse_to_other() -> None:
    key_like = "leo_AbCdEf0123456789AbCdEf0123456789"
    before = _sample(
        "leo_requests_total", tenant="other-t", model="other", technique="other", status="4xx"
    )
    metrics.observe_request("other-t", "my-own-finetune-123", "telepathy", 418)
    assert _sample(
        "leo_requests_total", tenant="other-t", model="other", technique="other", status="4xx"
    ) == before + 1
    # A model becomes a label only once the price table registers it.
    assert metrics.model_label("my-own-finetune-123") == "other"
    metrics.register_models(["My-Own-Finetune-123"])
    assert metrics.model_label("my-own-finetune-123") == "my-own-finetune-123"
    # Slugs are sanitised: no spaces, quotes or capitals reach a label.
    assert metrics.tenant_label('Evil "tenant"\n{x}') == "evil-tenant-x"
    assert metrics.tenant_label(key_like) == key_like.lower()  # a slug is not a key: never passed one
    assert metrics.status_label(599) == "5xx"
    assert metrics.status_label("abc") == "other"


@pytest.mark.usefixtures("fresh_label_state")
def test_tenant_label_set_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEO_METRICS_MAX_TENANTS", "3")
    labels = [metrics.tenant_label(f"t{i}") for i in range(6)]
    assert labels == ["t0", "t1", "t2", "other", "other", "other"]
    # Tenants seen before the cap keep their own label.
    assert metrics.tenant_label("t1") == "t1"


@pytest.mark.usefixtures("fresh_label_state")
def test_other_helpers_record_samples() -> None:
    up_before = _sample("leo_upstream_latency_seconds_count", provider="openai", model="gpt-4o")
    err_before = _sample("leo_upstream_errors_total", provider="openai", kind="timeout")
    odd_before = _sample("leo_upstream_errors_total", provider="openai", kind="other")
    sf_before = _sample("leo_singleflight_waits_total")
    quota_before = _sample("leo_quota_rejections_total", tenant="acme", kind="rpm")
    lookup_before = _sample("leo_cache_lookup_seconds_count", kind="semantic")
    emb_before = _sample("leo_embedding_seconds_count")

    metrics.observe_upstream("OpenAI", "gpt-4o", 1.5)
    metrics.observe_upstream_error("openai", "timeout")
    metrics.observe_upstream_error("openai", "kaboom")
    metrics.observe_singleflight_wait()
    metrics.observe_quota_rejection("acme", "rpm")
    metrics.observe_cache_lookup("semantic", 0.004)
    metrics.observe_embedding(0.01)

    assert _sample("leo_upstream_latency_seconds_count", provider="openai", model="gpt-4o") == up_before + 1
    assert _sample("leo_upstream_errors_total", provider="openai", kind="timeout") == err_before + 1
    assert _sample("leo_upstream_errors_total", provider="openai", kind="other") == odd_before + 1
    assert _sample("leo_singleflight_waits_total") == sf_before + 1
    assert _sample("leo_quota_rejections_total", tenant="acme", kind="rpm") == quota_before + 1
    assert _sample("leo_cache_lookup_seconds_count", kind="semantic") == lookup_before + 1
    assert _sample("leo_embedding_seconds_count") == emb_before + 1


def test_exported_names_cover_suffixes() -> None:
    names = metrics.exported_metric_names()
    for expected in (
        "leo_requests_total",
        "leo_tokens_saved_total",
        "leo_dollars_saved_total",
        "leo_upstream_latency_seconds_bucket",
        "leo_upstream_latency_seconds_count",
        "leo_upstream_errors_total",
        "leo_cache_lookup_seconds_sum",
        "leo_embedding_seconds_bucket",
        "leo_singleflight_waits_total",
        "leo_quota_rejections_total",
        "leo_celery_queue_depth",
        "leo_request_duration_seconds_bucket",
    ):
        assert expected in names
    # No label anywhere may be able to carry a key or a request id.
    for metric in (metrics.REQUESTS, metrics.UPSTREAM_ERRORS, metrics.QUOTA_REJECTIONS, metrics.TOKENS_SAVED):
        assert not set(metric._labelnames) & {"key", "api_key", "request_id", "user"}


# --------------------------------------------------------------------------- multiprocess

_WORKER_SCRIPT = textwrap.dedent(
    """
    import sys
    from optimizer import metrics
    n = int(sys.argv[1])
    for i in range(n):
        metrics.observe_request("acme", "gpt-4o", "semantic", 200, 10, 0.5, latency_s=0.01)
    metrics.observe_singleflight_wait()
    """
)

_RENDER_SCRIPT = textwrap.dedent(
    """
    import sys
    from optimizer import metrics
    body, ctype = metrics.render_metrics(queue_depth=False)
    sys.stdout.write(body.decode())
    """
)


def _env_with_multiproc(path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(path)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    for name in ("CELERY_BROKER_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    return env


def test_render_sums_every_process_in_multiprocess_mode(tmp_path: Path) -> None:
    env = _env_with_multiproc(tmp_path)
    for n in (3, 4):
        subprocess.run([sys.executable, "-c", _WORKER_SCRIPT, str(n)], env=env, check=True, cwd=ROOT)
    out = subprocess.run(
        [sys.executable, "-c", _RENDER_SCRIPT], env=env, check=True, capture_output=True, text=True, cwd=ROOT
    ).stdout
    requests = _samples(out, "leo_requests_total")
    key = tuple(sorted({"tenant": "acme", "model": "gpt-4o", "technique": "semantic", "status": "200"}.items()))
    assert requests[key] == 7
    assert sum(_samples(out, "leo_dollars_saved_total").values()) == pytest.approx(3.5)
    assert sum(_samples(out, "leo_singleflight_waits_total").values()) == 2
    assert sum(_samples(out, "leo_request_duration_seconds_count").values()) == 7


_GUNICORN_APP = textwrap.dedent(
    '''
    """A tiny ASGI app for the gunicorn test: /hit counts a request, /metrics renders, /pid says who."""
    import os
    from optimizer import metrics

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        path = scope["path"]
        if path == "/hit":
            metrics.observe_request("acme", "gpt-4o", "exact", 200, 5, 0.25)
            body = str(os.getpid()).encode()
            ctype = b"text/plain"
        elif path == "/metrics":
            body, ctype_s = metrics.render_metrics(queue_depth=False)
            ctype = ctype_s.encode()
        else:
            body, ctype = str(os.getpid()).encode(), b"text/plain"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", ctype), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
    '''
)


def _get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return response.read().decode()


def _wait_http(url: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            _get(url, timeout=1.0)
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(url)


@pytest.fixture
def gunicorn_two_workers(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """gunicorn from deploy/gunicorn.conf.py with 2 uvicorn workers serving the tiny app above."""
    if shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("gunicorn is not installed in this environment")
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "metrics_probe_app.py").write_text(_GUNICORN_APP)
    mp_dir = tmp_path / "prom"
    mp_dir.mkdir()
    # A stale sample file from an "earlier run": the master must wipe it at start.
    (mp_dir / "counter_999999.db").write_bytes(b"stale")
    port = _free_port()
    env = _env_with_multiproc(mp_dir)
    env["PYTHONPATH"] = str(app_dir) + os.pathsep + env["PYTHONPATH"]
    env.update(WEB_CONCURRENCY="2", GUNICORN_BIND=f"127.0.0.1:{port}", LEO_LOG_LEVEL="WARNING")
    log = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
         "metrics_probe_app:app"],
        env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/pid", time.monotonic() + 30)
        yield base, mp_dir, proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_gunicorn_workers_are_aggregated_and_dead_workers_kept(
    gunicorn_two_workers: tuple[str, Path, subprocess.Popen[bytes]],
) -> None:
    base, mp_dir, _ = gunicorn_two_workers
    assert not (mp_dir / "counter_999999.db").exists(), "on_starting must wipe old sample files"

    pids: set[str] = set()
    deadline = time.monotonic() + 30
    hits = 0
    # Each request uses a new connection, so the kernel spreads them over both workers.
    while hits < 40 or (len(pids) < 2 and time.monotonic() < deadline):
        pids.add(_get(f"{base}/hit"))
        hits += 1
    assert len(pids) == 2, f"requests never reached a second worker: {pids}"

    key = tuple(sorted({"tenant": "acme", "model": "gpt-4o", "technique": "exact", "status": "200"}.items()))
    # Every scrape, whichever worker answers it, sees all workers' requests.
    for _ in range(6):
        assert _samples(_get(f"{base}/metrics"), "leo_requests_total")[key] == hits

    # A worker dies (as after max_requests or a crash): gunicorn's child_exit runs, a new worker
    # starts, and the dead worker's counts stay in the total, as Prometheus counters must.
    os.kill(int(next(iter(pids))), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if _samples(_get(f"{base}/metrics", timeout=2), "leo_requests_total").get(key) == hits:
                break
        except OSError:
            pass
        time.sleep(0.2)
    _get(f"{base}/hit")
    assert _samples(_get(f"{base}/metrics"), "leo_requests_total")[key] == hits + 1
    dollars = sum(_samples(_get(f"{base}/metrics"), "leo_dollars_saved_total").values())
    assert dollars == pytest.approx((hits + 1) * 0.25)


# --------------------------------------------------------------------------- queue depth


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A private redis-server on its own loopback port (stopped by the test when it wants)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/3"
    import redis

    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(url, socket_timeout=0.5).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    try:
        yield url, proc
    finally:
        proc.kill()
        proc.wait(timeout=5)


def test_queue_depth_reads_redis_lists(redis_server: tuple[str, subprocess.Popen[bytes]]) -> None:
    import redis

    url, proc = redis_server
    client = redis.Redis.from_url(url)
    client.rpush("celery", *[json.dumps({"n": i}) for i in range(3)])
    client.rpush("celery\x06\x163", "a", "b")  # Celery's key for priority 3 of queue "celery"
    client.rpush("billing", "x")

    collector = metrics.CeleryQueueDepthCollector(url, ["celery", "billing", "empty"])
    families = list(collector.collect())
    assert [f.name for f in families] == ["leo_celery_queue_depth"]
    values = {s.labels["queue"]: s.value for s in families[0].samples}
    assert values == {"celery": 5.0, "billing": 1.0, "empty": 0.0}

    # Redis gone: the scrape must neither fail nor wait long; the series is simply absent.
    proc.kill()
    proc.wait(timeout=5)
    started = time.monotonic()
    assert list(collector.collect()) == []
    assert time.monotonic() - started < 2.0


def test_queue_depth_ignores_non_redis_brokers() -> None:
    collector = metrics.CeleryQueueDepthCollector("amqp://guest@127.0.0.1:5672//")
    assert list(collector.collect()) == []
    assert [f.name for f in collector.describe()] == ["leo_celery_queue_depth"]


# --------------------------------------------------------------------------- Celery worker exporter

_WORKER_EXPORTER_SCRIPT = textwrap.dedent(
    """
    import sys, urllib.request
    from celery import signals
    from optimizer import metrics

    port = int(sys.argv[1])
    metrics.install_celery_worker_exporter(port=port, addr="127.0.0.1")
    signals.worker_init.send(sender=None)

    class Task:
        name = "billing.tasks.rollup_usage"

    signals.task_success.send(sender=Task)
    signals.task_success.send(sender=Task)
    signals.task_failure.send(sender=Task)
    print(urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
    """
)


def test_celery_worker_exporter_serves_task_counts(tmp_path: Path) -> None:
    env = _env_with_multiproc(tmp_path)
    (tmp_path / "gauge_liveall_424242.db").write_bytes(b"stale")
    port = _free_port()
    out = subprocess.run(
        [sys.executable, "-c", _WORKER_EXPORTER_SCRIPT, str(port)],
        env=env, check=True, capture_output=True, text=True, cwd=ROOT, timeout=60,
    ).stdout
    tasks = _samples(out, "leo_celery_tasks_total")
    assert tasks[(("state", "success"), ("task", "billing.tasks.rollup_usage"))] == 2
    assert tasks[(("state", "failure"), ("task", "billing.tasks.rollup_usage"))] == 1
    assert not (tmp_path / "gauge_liveall_424242.db").exists(), "worker_init must wipe old samples"


def test_importing_the_project_leaves_prometheus_client_unimported(tmp_path: Path) -> None:
    """leo_optima/__init__.py imports the Celery app before any settings module runs, so before
    leo_optima/settings/env.py copies `.env` into os.environ. prometheus_client picks single- or
    multiprocess mode when it is first imported: were it imported with the Celery app, a
    PROMETHEUS_MULTIPROC_DIR set in `.env` would come too late and each worker would count alone
    (why leo_optima/celery.py imports the worker exporter inside its signal handler)."""
    script = textwrap.dedent(
        """
        import os, sys
        import leo_optima
        assert "prometheus_client" not in sys.modules, "imported with the project package"
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]  # what settings/env.py does with `.env`
        from prometheus_client import values
        print(values.ValueClass.__name__)
        """
    )
    env = _env_with_multiproc(tmp_path)
    del env["PROMETHEUS_MULTIPROC_DIR"]
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "MmapedValue"  # multiprocess mode
