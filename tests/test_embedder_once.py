"""A chat request embeds its conversation once: the vector computed for the semantic lookup is the
one stored with the answer, and nothing is embedded twice.

The model's calls are counted inside the serving process, so the test runs a process of its own
(like a live server: the test database, the fake upstream over loopback HTTP) that serves the
requests through the real ASGI application (Django's ``ASGIHandler`` under httpx's
``ASGITransport``, the official ``openai`` SDK as the client), with a counter around the embedder's
model and its LRU of recent texts off, so a second embedding could not hide behind it. It prints
every text the model ran on, with its vector, and waits for the answers' cache entries.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np

from optimizer.models import CacheEntry
from tests.conftest import ROOT, _tenant_ids, seed_prices, server_env
from tests.writes_settled import writes_settled  # noqa: F401  (autouse fixture)

QUESTION = "Which gases make up most of the air we breathe?"
UNLOOKED = "How many bones are there in an adult human hand?"

SERVE = """
import asyncio, json, sys, time
import django
django.setup()
import httpx, openai
from django.core.handlers.asgi import ASGIHandler
from optimizer.models import CacheEntry
from optimizer.semantic import get_embedder

key, asks = sys.argv[1], json.loads(sys.argv[2])
emb = get_embedder()
emb._cache_size = 0
calls = []
model = emb._infer

def counted(texts):
    vectors = model(texts)
    calls.extend(zip(texts, vectors.tolist()))
    return vectors

emb._infer = counted

async def main():
    transport = httpx.ASGITransport(app=ASGIHandler())
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        client = openai.AsyncOpenAI(base_url="http://127.0.0.1/v1", api_key=key, http_client=http, max_retries=0)
        caches = []
        for text, headers in asks:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": text}], extra_headers=headers)
            caches.append(raw.headers["x-leo-cache"])
        return caches

caches = asyncio.run(main())
deadline = time.monotonic() + 30  # the entries are written behind
while CacheEntry.objects.filter(request_text__in=[t for t, _ in asks]).count() < len(asks) and time.monotonic() < deadline:
    time.sleep(0.05)
print("RESULT " + json.dumps({"caches": caches, "calls": calls}), flush=True)
"""


def serve(fake_upstream: Any, key: str, asks: list[tuple[str, dict[str, str]]]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-c", SERVE, key, json.dumps(asks)], cwd=ROOT,
                          env=server_env(fake_upstream.url), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (result,) = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]  # the logs are JSON too
    return json.loads(result.removeprefix("RESULT "))


def stored_vector(text: str) -> np.ndarray:
    entry = CacheEntry.objects.get(request_text=text)
    assert entry.embedding is not None
    return np.frombuffer(bytes(entry.embedding), dtype=np.float32)


def test_each_answer_is_embedded_once_and_stored_with_that_vector(transactional_db: None, fake_upstream: Any) -> None:
    from tenants.models import ApiKey, Tenant

    seed_prices()
    tid = next(_tenant_ids)
    tenant = Tenant.objects.create(id=tid, name=f"Embeds once {tid}", slug=f"embeds-once-{tid}")
    _, key = ApiKey.issue(tenant, name="test")
    # A miss: embedded for the lookup, stored with that vector. `no-cache`: no lookup, embedded
    # once to be stored.
    out = serve(fake_upstream, key, [(QUESTION, {}), (UNLOOKED, {"Cache-Control": "no-cache"})])
    assert out["caches"] == ["miss", "miss"]
    for text in (QUESTION, UNLOOKED):
        embedded = [np.asarray(vector, dtype=np.float32) for t, vector in out["calls"] if t == text]
        assert len(embedded) == 1, [t for t, _ in out["calls"]]
        assert np.array_equal(stored_vector(text), embedded[0])
