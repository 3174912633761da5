"""X-Forwarded-For is believed only from LEO_TRUSTED_PROXIES, however the app is started.

Issue #13 item 14: uvicorn (and gunicorn) believe X-Forwarded-For from loopback by default, so a
local client could name a fresh address per request and never meet the bad-key throttle. The
servers here are started the ways the app is: gunicorn with deploy/gunicorn.conf.py (the image
and compose), and scripts/serve.sh (`make run`, in tests/test_make_run.py); compose's wiring is
read from compose.yaml.
"""

from __future__ import annotations

import ipaddress
import os
import re
import runpy
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import yaml

from tenants.auth import BAD_KEY_LIMIT_PER_MINUTE
from tests.conftest import ROOT, LeoServer

BAD_KEY = "leo_" + "x" * 40


def _forget_throttle(address: str) -> None:
    """The bad-key counter lives in Redis when there is one; drop it so later tests from this
    address are not refused for the rest of the minute."""
    url = os.environ.get("REDIS_URL")
    if url:
        import redis

        redis.Redis.from_url(url).delete(f"leo:badkey:{address}")


def assert_throttled_despite_forwarded_for(server: LeoServer) -> None:
    """From loopback, with a new X-Forwarded-For on every request: still throttled as one client."""
    # A clean count for loopback: with Redis the counter is shared by every test of the last minute.
    _forget_throttle("127.0.0.1")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            statuses = [
                http.get("/v1/models", headers={"Authorization": f"Bearer {BAD_KEY}",
                                                "X-Forwarded-For": f"198.51.100.{i + 1}"}).status_code
                for i in range(BAD_KEY_LIMIT_PER_MINUTE + 3)
            ]
            # Throttled within the limit, and once throttled no new X-Forwarded-For brings back a
            # 401 (believing the header would make every request a fresh client: all 401s). Other
            # tests' bad keys from loopback may still count in a shared Redis, so the 429 may come
            # a little before the limit, never after it.
            first = statuses.index(429) if 429 in statuses else len(statuses)
            assert first <= BAD_KEY_LIMIT_PER_MINUTE, statuses
            assert set(statuses[:first]) <= {401} and set(statuses[first:]) == {429}, statuses
            fresh = http.get("/v1/models", headers={"Authorization": f"Bearer {BAD_KEY}",
                                                    "X-Forwarded-For": "203.0.113.77"})
            assert fresh.status_code == 429
    finally:
        _forget_throttle("127.0.0.1")


@pytest.mark.django_db(transaction=True)
def test_gunicorn_config_believes_no_forwarded_for_by_default(start_server: Callable[..., LeoServer]) -> None:
    server = start_server(gunicorn=True)  # nothing configured: the default
    try:
        assert_throttled_despite_forwarded_for(server)
    finally:
        server.stop()


@pytest.mark.django_db(transaction=True)
def test_gunicorn_believes_a_configured_proxy(start_server: Callable[..., LeoServer]) -> None:
    """Behind a named proxy each client has its own budget: a guesser is throttled, a bystander is not."""
    from tenants.models import ApiKey, Tenant

    server = start_server(gunicorn=True, LEO_TRUSTED_PROXIES="127.0.0.1,::1")
    _, good_key = ApiKey.issue(Tenant.create(f"Proxied {uuid.uuid4().hex[:6]}"), name="good")
    attacker, bystander = "198.51.100.200", "203.0.113.200"
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for _ in range(BAD_KEY_LIMIT_PER_MINUTE + 1):
                last = http.get("/v1/models", headers={"Authorization": f"Bearer {BAD_KEY}",
                                                       "X-Forwarded-For": attacker})
            assert last.status_code == 429
            good = {"Authorization": f"Bearer {good_key}"}
            assert http.get("/v1/models", headers={**good, "X-Forwarded-For": attacker}).status_code == 429
            assert http.get("/v1/models", headers={**good, "X-Forwarded-For": bystander}).status_code == 200
    finally:
        _forget_throttle(attacker)
        server.stop()


def test_gunicorn_config_reads_leo_trusted_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    conf = ROOT / "deploy" / "gunicorn.conf.py"
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # gunicorn's own variable is not what counts
    monkeypatch.setenv("LEO_TRUSTED_PROXIES", "")
    assert runpy.run_path(str(conf))["forwarded_allow_ips"] == ""
    monkeypatch.setenv("LEO_TRUSTED_PROXIES", "10.1.2.3, 172.30.77.0/24")
    assert runpy.run_path(str(conf))["forwarded_allow_ips"] == "10.1.2.3,172.30.77.0/24"
    for bad in ("*", "nginx", "10.0.0.300"):
        monkeypatch.setenv("LEO_TRUSTED_PROXIES", bad)
        with pytest.raises(ImproperlyConfigured):
            runpy.run_path(str(conf))


def _default(value: str) -> str:
    """The default of a compose `${NAME:-default}` value."""
    match = re.fullmatch(r"\$\{(\w+):-([^}]*)\}", value)
    assert match, value
    return match.group(2)


def test_compose_believes_only_nginx() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    nginx_address = _default(services["nginx"]["networks"]["default"]["ipv4_address"])
    subnet = _default(compose["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(nginx_address) in ipaddress.ip_network(subnet)
    for name in ("web", "worker", "beat", "migrate"):
        env = services[name].get("environment") or compose["x-app-env"]
        assert _default(env["LEO_TRUSTED_PROXIES"]) == nginx_address, name
        assert "LEO_TRUST_X_FORWARDED_FOR" not in env
    example = dict(re.findall(r"^(\w+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))
    assert example["LEO_NGINX_ADDRESS"] == nginx_address and example["LEO_NETWORK_SUBNET"] == subnet
    # nginx is the edge: it replaces a client's X-Forwarded-For instead of appending to it.
    template = (ROOT / "deploy" / "nginx" / "leo.conf.template").read_text()
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in template
    assert "$proxy_add_x_forwarded_for" not in template


def test_the_run_script_serves_through_serve_sh_without_proxy_headers() -> None:
    serve = Path(ROOT / "scripts" / "serve.sh").read_text()
    assert "--no-proxy-headers" in serve and "trusted_proxies" in serve
