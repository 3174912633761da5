"""Savings benchmark: a realistic chat workload replayed through a live LEO server.

Run from the repository root::

    python -m tests.bench.savings                    # 4000 requests, about 2 minutes on 2 shared cores
    python -m tests.bench.savings --requests 1500 --concurrency 4 --json /tmp/savings.json

It starts everything itself: the fake upstream in-process (``fake_upstream``), a fresh
database (a temporary SQLite file with tables made from the models, or ``DATABASE_URL`` when set,
migrated first: about 2 more minutes the first time; ``REDIS_URL`` is passed on), one uvicorn
LEO server as a subprocess, and one tenant with an API key. The tenant's settings are the
defaults (exact, semantic, dedup and decomposition on, lossless prompt optimization) plus routing
opted in with one rule, ``gpt-4o -> gpt-4o-mini`` for short simple requests.

The workload (``tests/bench/data/savings_intents.json``, written for this benchmark)
---------------------------------------------------------------------------------------
Four "apps" share the tenant, each with its own model and system prompt: a programming helper
(gpt-4o-mini), a customer-support bot and a travel assistant (gpt-4o), and a general assistant
(gpt-4o-mini, no system prompt). An *intent* is one question with one right answer, written as a
family of paraphrases:

- 39 template families (capital of X, "How do I X in git?", calories in X, HTTP status X, ...)
  times 4-10 slot values; each value is an intent, each template a paraphrase of it. Siblings
  differ only in the slot (Austria / Australia, "reverse a list" / "reverse a string", "sound in
  air" / "sound in water"), so every family is also a set of near-miss negatives;
- 28 hand-written intents with 3-4 paraphrases each;
- 22 hard-negative pairs: two intents that read alike but need different answers (Celsius to
  Fahrenheit / Fahrenheit to Celsius, time / space complexity of quicksort, upgrade / downgrade,
  high / low in iron, ...), 2 paraphrases each. 351 recurring intents in all.

The trace (``--seed``, deterministic) draws ``--requests`` chat requests:

- 83% single questions: the intent by Zipf popularity (weight 1/rank^``--zipf``, ranks shuffled
  with the seed, so hard negatives sit anywhere in the ranking), the paraphrase with a milder
  skew (weight 1/(i+1)^0.5: people favour the plain phrasing but use all of them);
- 8% multi-part requests: 2-3 intents of one app drawn the same way, written as a numbered list,
  a bulleted list after "I have a few questions:", consecutive questions, or "X? Also, Y?"; only
  layouts that ``decompose.split`` accepts are kept (the oracle needs to know the parts);
- 6% one-off questions from 6 templates with random slots ("Plan a 4-day itinerary for Kyoto in
  March."): each asked once, many differing from another one-off only in a number or name;
- 2% pasted-context questions: one of 4 documents pasted twice (a copy-paste slip that lossless
  prompt optimization removes), then one of 6 questions about it. Each (document, question) pair
  is its own intent, so "same document, other question" is a hard negative for the cache;
- 1% dependent compounds ("What is Redis? When should I use it instead of Memcached?"): two
  questions where the second refers to the first; never to be decomposed, each its own intent.

15% of requests stream. They are sent in trace order with ``--concurrency`` in flight.

What is measured
----------------
Baseline: every request sent straight to the upstream. Its cost is computed with the fake
upstream's published token rule (``docs/fake_upstream.md``) and the seeded list prices, exactly
what the fake would have billed.

Oracle: a perfect cache that knows each request's intent (the trace records it). The first
request of an intent pays its baseline cost, later ones are free. A multi-part request whose parts
were all seen is free; one with some new parts pays the cheaper of the whole request and the new
parts asked alone (each part as ``split`` writes it, priced by the same rule); one whose parts
are all new pays the whole request. Every part it answers counts as seen. One upstream call per
request that pays anything.

LEO: upstream calls as counted by the fake upstream; dollars from the ledger (each row's cost
is the upstream's reported usage at the served model's price). Two LEO figures are compared with
the oracle: ``cache`` counts what LEO would have paid without routing and prompt optimization
(misses at their baseline cost, decomposed requests at their parts' upstream usage), so it
compares like with like; ``all`` is the ledger's actual cost, routing and prompt optimization
included. Savings = baseline - cost; the ratio is LEO's savings over the oracle's.

Wrong answers: the fake upstream tags each answer ``ANSWER[<first 12 hex of sha256(last user
message)>]``. Every text the trace sends (each paraphrase, compound and part as ``split`` writes
it) is mapped from its tag to its intent. A single-question answer is right when it carries
exactly one tag and that tag's text belongs to the request's intent (any paraphrase of it). A
multi-part answer is right when it carries one tag per part, in order, each belonging to that
part's intent (a composed answer), or exactly one tag whose text is a compound of the same set of
intents (the request went upstream whole, or hit a cached compound of the same questions). All
else is wrong: a tag of another intent, a compound answered with one part's answer, a missing
section, or a tag of no text the trace sent. Failed requests (no 200) are counted separately.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data" / "savings_intents.json"
TAG_RE = re.compile(r"ANSWER\[([0-9a-f]{12})\]")
ROUTING_RULE = {"from_model": "gpt-4o", "to_model": "gpt-4o-mini", "max_prompt_tokens": 200, "name": "bench"}
MIX = (("single", 0.83), ("multi", 0.08), ("one_off", 0.06), ("context", 0.02), ("dependent", 0.01))
STREAM_SHARE = 0.15
SEMANTIC_THRESHOLD: float | None = 0.84  # tuned per tenant (OptimizerSettings); see docs/savings.md
QUESTION_WORDS = {"what", "what's", "how", "which", "who", "when", "where", "why", "is", "can", "do", "does",
                  "should", "are"}


# --- the workload --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Intent:
    """One question with one right answer, and the ways people write it."""

    id: str
    app: str
    paraphrases: tuple[str, ...]
    hard: bool = False


@dataclass
class Item:
    """One request of the trace."""

    kind: str
    app: str
    text: str  # the last user message
    intents: tuple[str, ...]  # the intent of each part (one for a single question)
    stream: bool = False
    parts: tuple[str, ...] = ()  # multi-part: each part's text as `split` writes it


def load_intents(data: dict[str, Any]) -> list[Intent]:
    intents: list[Intent] = []
    for fam in data["families"]:
        for value in fam["values"]:
            intents.append(Intent(f"{fam['id']}:{value}", fam["app"],
                                  tuple(t.replace("{x}", value) for t in fam["templates"])))
    for n, item in enumerate(data["standalone"]):
        intents.append(Intent(f"standalone:{n}", item["app"], tuple(item["paraphrases"])))
    for n, pair in enumerate(data["hard_negatives"]):
        intents.append(Intent(f"hard:{n}:a", pair["app"], tuple(pair["a"]), hard=True))
        intents.append(Intent(f"hard:{n}:b", pair["app"], tuple(pair["b"]), hard=True))
    return intents


def _request(data: dict[str, Any], app: str, text: str, stream: bool = False) -> dict[str, Any]:
    spec = data["apps"][app]
    messages = ([{"role": "system", "content": spec["system"]}] if spec["system"] else []) + \
        [{"role": "user", "content": text}]
    body: dict[str, Any] = {"model": spec["model"], "messages": messages}
    if stream:
        body["stream"] = True
    return body


def _lower_first(q: str) -> str:
    first = q.split()[0].lower()
    return q[0].lower() + q[1:] if first in QUESTION_WORDS else q


def _compound(rng: random.Random, texts: list[str]) -> str:
    layout = rng.choice(["numbered", "bullets", "questions", "also"])
    if layout == "numbered":
        return "\n".join(f"{i}. {t}" for i, t in enumerate(texts, start=1))
    if layout == "bullets":
        return "I have a few questions:\n" + "\n".join(f"- {t}" for t in texts)
    if layout == "also" and len(texts) == 2:
        return f"{texts[0]} Also, {_lower_first(texts[1])}"
    return " ".join(texts)


class Trace:
    """The deterministic request sequence, and what the oracle and the judge need to know."""

    def __init__(self, n: int, seed: int, zipf: float) -> None:
        from optimizer.pipeline.decompose import split
        from optimizer.pricing import count_tokens as pricing_count_tokens
        from optimizer.pipeline.prompt_opt import optimize

        self.data = json.loads(DATA.read_text())
        self.intents = load_intents(self.data)
        self.by_id = {i.id: i for i in self.intents}
        rng = random.Random(seed)
        ranked = list(self.intents)
        rng.shuffle(ranked)
        weights = [1 / (r + 1) ** zipf for r in range(len(ranked))]
        by_app: dict[str, list[tuple[Intent, float]]] = defaultdict(list)
        for intent, w in zip(ranked, weights, strict=True):
            by_app[intent.app].append((intent, w))
        self.items: list[Item] = []
        self.compound_intents: dict[str, frozenset[str]] = {}  # compound text -> its parts' intents
        self.refused_layouts = 0
        one_offs_seen: set[str] = set()
        kinds, shares = zip(*MIX, strict=True)

        def phrase(intent: Intent) -> str:
            pw = [1 / (i + 1) ** 0.5 for i in range(len(intent.paraphrases))]
            return rng.choices(intent.paraphrases, pw)[0]

        while len(self.items) < n:
            kind = rng.choices(kinds, shares)[0]
            stream = rng.random() < STREAM_SHARE
            if kind == "single":
                intent = rng.choices(ranked, weights)[0]
                self.items.append(Item("hard" if intent.hard else "single", intent.app, phrase(intent),
                                       (intent.id,), stream))
            elif kind == "multi":
                first = rng.choices(ranked, weights)[0]
                pool = by_app[first.app]
                chosen = [first]
                want = rng.choice([2, 2, 3])
                while len(chosen) < want:
                    other = rng.choices([i for i, _ in pool], [w for _, w in pool])[0]
                    if other not in chosen:
                        chosen.append(other)
                for _attempt in range(6):
                    texts = [phrase(i) for i in chosen]
                    text = _compound(rng, texts)
                    decomposition = split(_request(self.data, first.app, text))
                    if decomposition is not None and len(decomposition.parts) == len(chosen):
                        parts = tuple(p.text for p in decomposition.parts)
                        ids = tuple(i.id for i in chosen)
                        self.compound_intents[text] = frozenset(ids)
                        self.items.append(Item("multi", first.app, text, ids, stream, parts))
                        break
                    self.refused_layouts += 1
            elif kind == "one_off":
                spec = rng.choice(self.data["one_off_templates"])
                text = spec["template"]
                for slot, values in spec["slots"].items():
                    text = text.replace("{" + slot + "}", rng.choice(values))
                if text in one_offs_seen:
                    continue
                one_offs_seen.add(text)
                self.items.append(Item("one_off", spec["app"], text, (f"oneoff:{text}",), stream))
            elif kind == "context":
                d = rng.randrange(len(self.data["context_documents"]))
                q = rng.randrange(len(self.data["context_questions"]))
                doc = self.data["context_documents"][d]
                # half paste the document twice (a copy-paste slip prompt optimization removes)
                pasted = f"{doc}\n\n{doc}" if rng.random() < 0.5 else doc
                text = f"{pasted}\n\n{self.data['context_questions'][q]}"
                self.items.append(Item("context", "general", text, (f"context:{d}:{q}",), stream))
            else:
                spec = rng.choice(self.data["dependent_compounds"])
                self.items.append(Item("dependent", spec["app"], spec["text"], (f"dependent:{spec['text']}",),
                                       stream))

        # tag -> what the text it names asks: an intent id, or a frozenset of intents (a compound)
        self.tags: dict[str, str | frozenset[str]] = {}
        for intent in self.intents:
            for p in intent.paraphrases:
                self.tags[tag(p)] = intent.id
        for item in self.items:
            if item.kind == "context":
                # Lossless prompt optimization drops the pasted-twice copy before the upstream sees
                # it: the answer to that text answers the same question.
                sent = optimize(self.body(item), "lossless", pricing_count_tokens).request["messages"][-1]["content"]
                self.tags.setdefault(tag(sent), item.intents[0])
            if item.kind == "multi":
                self.tags[tag(item.text)] = self.compound_intents[item.text]
                for part, intent_id in zip(item.parts, item.intents, strict=True):
                    self.tags.setdefault(tag(part), intent_id)
            else:
                self.tags.setdefault(tag(item.text), item.intents[0])

    def body(self, item: Item) -> dict[str, Any]:
        return _request(self.data, item.app, item.text, item.stream)

    def model(self, item: Item) -> str:
        return str(self.data["apps"][item.app]["model"])


def tag(text: str) -> str:
    """The fake upstream's name for the question ``text`` (docs/fake_upstream.md)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# --- costs: the fake upstream's token rule at list prices ----------------------------------------

class Pricer:
    """What the fake upstream would bill for a request (docs/fake_upstream.md, "The token rule")."""

    def __init__(self) -> None:
        from optimizer.prices_seed import PRICES

        self.prices = {m: (Decimal(i), Decimal(o)) for m, _p, kind, i, o in PRICES if kind == "chat"}

    def cost(self, model: str, messages: list[dict[str, Any]]) -> tuple[Decimal, int, int]:
        from fake_upstream import answer_text, count_tokens, last_user_text

        prompt = 3 + sum(4 + count_tokens(m["content"]) for m in messages)
        completion = count_tokens(answer_text(last_user_text(messages)))
        i, o = self.prices[model]
        return (i * prompt + o * completion) / Decimal(1_000_000), prompt, completion

    def of_tokens(self, model: str, prompt: int, completion: int) -> Decimal:
        i, o = self.prices[model]
        return (i * prompt + o * completion) / Decimal(1_000_000)


@dataclass
class Oracle:
    """The oracle's upstream bill and calls."""

    usd: Decimal = Decimal(0)
    calls: int = 0


def oracle(trace: Trace, pricer: Pricer) -> Oracle:
    """What a perfect cache that knows every request's intent pays, replaying the trace in order."""
    seen: set[str] = set()
    out = Oracle()
    for item in trace.items:
        body = trace.body(item)
        whole, _, _ = pricer.cost(trace.model(item), body["messages"])
        new = [i for i in item.intents if i not in seen]
        if not new:
            continue
        out.calls += 1
        if len(new) == len(item.intents):
            out.usd += whole
        else:
            head = body["messages"][:-1]
            parts = sum((pricer.cost(trace.model(item), head + [{"role": "user", "content": p}])[0]
                         for p, i in zip(item.parts, item.intents, strict=True) if i in new), Decimal(0))
            out.usd += min(whole, parts)
        seen.update(item.intents)
    return out


# --- judging answers -----------------------------------------------------------------------------

def judge(trace: Trace, item: Item, content: str) -> str:
    """'right' or why it is wrong; see the module docstring."""
    tags = TAG_RE.findall(content)
    if item.kind == "multi":
        if len(tags) == 1:
            return "right" if trace.tags.get(tags[0]) == frozenset(item.intents) else "wrong:whole"
        if len(tags) != len(item.intents):
            return "wrong:sections"
        for t, intent in zip(tags, item.intents, strict=True):
            if trace.tags.get(t) != intent:
                return "wrong:part" if t in trace.tags else "wrong:unknown-tag"
        return "right"
    if len(tags) != 1:
        return "wrong:sections"
    owner = trace.tags.get(tags[0])
    if owner is None:
        return "wrong:unknown-tag"
    return "right" if owner == item.intents[0] else "wrong:other-intent"


# --- the live system -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _NoMigrations(dict):  # type: ignore[type-arg]
    """MIGRATION_MODULES that says "no migrations" for every app (what pytest-django does)."""

    def __contains__(self, item: object) -> bool:
        return True

    def __getitem__(self, item: str) -> None:
        return None


class Live:
    """Database, fake upstream, LEO server, tenant and key; stopped in reverse order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.tenants: list[int] = []
        self.configured = configured = "DATABASE_URL" in os.environ
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
        os.environ["DJANGO_SETTINGS_MODULE"] = "leo_optima.settings.test"
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import django
        from django.core.management import call_command

        django.setup()  # test settings export per-run secrets, so the server shares them
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        if configured:
            call_command("migrate", interactive=False, verbosity=0)
        else:
            # A fresh SQLite file: create the tables straight from the models, as the test run does
            # (--no-migrations); replaying every migration takes minutes on a loaded machine.
            from django.conf import settings

            from optimizer import prices_seed
            from optimizer.models import ModelPrice

            settings.MIGRATION_MODULES = _NoMigrations()
            call_command("migrate", run_syncdb=True, interactive=False, verbosity=0)
            prices_seed.seed(ModelPrice)
        from fake_upstream import run_in_thread

        self.upstream = run_in_thread()
        self.port = free_port()
        env = {**os.environ, "LEO_UPSTREAM_URL": self.upstream.url, "LEO_UPSTREAM_API_KEY": "sk-bench-0000",
               "LEO_LEDGER_FLUSH_SECONDS": "0.05", "PYTHONUNBUFFERED": "1"}
        self.log = open(workdir / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.server = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "leo_optima.asgi:application", "--host", "127.0.0.1", "--port",
             str(self.port), "--workers", "1", "--no-access-log", "--lifespan", "on"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait()

    def _wait(self) -> None:
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError("LEO server exited:\n" + (self.workdir / "server.log").read_text()[-3000:])
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError("LEO server did not come up")

    def tenant(self, name: str, routing: bool, **settings: Any) -> tuple[int, str]:
        from optimizer.models import OptimizerSettings
        from tenants.models import ApiKey, Tenant

        tenant = Tenant.create(f"{name} {int(time.time())}")
        OptimizerSettings.objects.update_or_create(tenant=tenant, defaults={
            "routing": routing, "routing_rules": [ROUTING_RULE] if routing else [], **settings})
        _, key = ApiKey.issue(tenant, name="bench")
        self.tenants.append(int(tenant.pk))
        return int(tenant.pk), key

    def stop(self) -> None:
        if self.server.poll() is None:
            os.killpg(self.server.pid, signal.SIGTERM)
            try:
                self.server.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.server.pid, signal.SIGKILL)
        self.log.close()
        self.upstream.stop()
        if self.configured:  # leave a configured database as it was: the tenants take their rows along
            from tenants.models import Tenant

            Tenant.objects.filter(pk__in=self.tenants).delete()


@dataclass
class Result:
    """What came back for one trace request."""

    index: int
    status: int = 0
    cache: str = ""
    route: str = ""
    request_id: str = ""
    content: str = ""
    error: str = ""
    verdict: str = ""


async def replay(trace: Trace, base_url: str, key: str, concurrency: int) -> list[Result]:
    """Send the trace in order with ``concurrency`` requests in flight (the official async SDK)."""
    import openai

    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0, timeout=120)
    results = [Result(i) for i in range(len(trace.items))]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(trace.items)):
        queue.put_nowait(i)

    async def one(i: int) -> None:
        item, res = trace.items[i], results[i]
        body = trace.body(item)
        try:
            raw = await client.chat.completions.with_raw_response.create(**body)
            res.status = raw.status_code
            res.cache = raw.headers.get("x-leo-cache", "")
            res.route = raw.headers.get("x-leo-route", "")
            res.request_id = raw.headers.get("x-leo-request-id", "")
            parsed = raw.parse()
            if item.stream:
                pieces = []
                async for chunk in parsed:
                    if chunk.choices:
                        pieces.append(chunk.choices[0].delta.content or "")
                res.content = "".join(pieces)
            else:
                res.content = parsed.choices[0].message.content or ""
        except openai.APIError as exc:
            res.status = getattr(exc, "status_code", 0) or 0
            res.error = f"{type(exc).__name__}: {str(exc)[:200]}"

    async def worker() -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            await one(i)

    await asyncio.gather(*[worker() for _ in range(concurrency)])
    await client.close()
    return results


def ledger_rows(tenant_id: int, n: int, timeout: float = 60) -> list[Any]:
    """The tenant's ledger rows, once all ``n`` are written (the ledger is written behind)."""
    from optimizer.models import RequestLog

    deadline = time.monotonic() + timeout
    while True:
        rows = list(RequestLog.objects.filter(tenant_id=tenant_id))
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def warm_up(live: Live) -> None:
    """Load the embedding model before the clock starts (its own tenant, not counted)."""
    import openai

    _, key = live.tenant("bench-warmup", routing=False)
    client = openai.OpenAI(base_url=live.url + "/v1", api_key=key, max_retries=0, timeout=120)
    for text in ("What is a warm-up request?", "What is a warm up request?"):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": text}])


# --- report --------------------------------------------------------------------------------------

def progress(message: str) -> None:
    print(f"[savings] {message}", file=sys.stderr, flush=True)


def _usd(x: Decimal | float) -> str:
    return f"${float(x):,.4f}"


def _pct(a: float, b: float) -> str:
    return f"{100 * a / b:.1f}%" if b else "n/a"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start everything, replay, tally against the baseline and the oracle, print, return the figures."""
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="leo-savings-"))
    progress("starting the database, fake upstream and LEO server")
    live = Live(workdir)
    try:
        trace = Trace(args.requests, args.seed, args.zipf)  # after django.setup(): it uses the pipeline's parts
        pricer = Pricer()
        progress(f"server up after {time.monotonic() - started:.0f} s; {len(trace.items)} requests; warming up")
        warm_up(live)
        progress(f"replaying with {args.concurrency} in flight")
        tuned = {"semantic_threshold": args.semantic_threshold} if args.semantic_threshold is not None else {}
        tenant_id, key = live.tenant("bench-savings", routing=True, **tuned)
        before = live.upstream.stats()
        t0 = time.monotonic()
        results = asyncio.run(replay(trace, live.url, key, args.concurrency))
        replay_s = time.monotonic() - t0
        after = live.upstream.stats()
        rows = {r.request_id: r for r in ledger_rows(tenant_id, len(results))}
        import httpx

        analytics = httpx.get(live.url + "/v1/analytics", headers={"Authorization": f"Bearer {key}"},
                              timeout=30).json()
    finally:
        live.stop()
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)

    n = len(trace.items)
    baseline = Decimal(0)
    leo_cache_cost = Decimal(0)
    leo_cost = Decimal(0)
    by_kind: dict[str, Counter[str]] = defaultdict(Counter)
    headers: Counter[str] = Counter()
    measured: defaultdict[str, Decimal] = defaultdict(Decimal)
    wrong_examples: list[dict[str, Any]] = []
    for item, res in zip(trace.items, results, strict=True):
        whole, _, _ = pricer.cost(trace.model(item), trace.body(item)["messages"])
        baseline += whole
        row = rows.get(res.request_id)
        kind = by_kind[item.kind]
        kind["requests"] += 1
        cost = row.cost_usd if row is not None else Decimal(0)
        leo_cost += cost
        if res.status != 200 or res.error:
            kind["failed"] += 1
            leo_cache_cost += whole  # conservative: as if it had gone upstream whole
            continue
        headers[res.cache] += 1
        kind[res.cache] += 1
        if res.route:
            kind["routed"] += 1
        # The saving of each request by the fake's own token rule, put on the technique that made it.
        if res.cache in ("miss", "bypass"):
            leo_cache_cost += whole
            routed = row.routing_saved_usd if row is not None else Decimal(0)
            measured["routing"] += routed
            measured["prompt_optimization"] += whole - cost - routed
        elif res.cache == "decomposed":
            leo_cache_cost += cost
            measured["decomposed"] += whole - cost
        else:
            measured[res.cache] += whole - cost
        res.verdict = judge(trace, item, res.content)
        if res.verdict != "right":
            kind["wrong"] += 1
            if len(wrong_examples) < 20:
                wrong_examples.append({"kind": item.kind, "asked": item.text, "intents": item.intents,
                                       "cache": res.cache, "verdict": res.verdict,
                                       "served_tags": [trace.tags.get(t, "?") if not isinstance(trace.tags.get(t),
                                                                                                 frozenset)
                                                       else sorted(trace.tags[t])
                                                       for t in TAG_RE.findall(res.content)]})
    upstream_calls = after["chat"] - before["chat"]
    upstream_usd = sum((pricer.of_tokens(m, v["prompt_tokens"] - before["by_model"].get(m, {}).get("prompt_tokens", 0),
                                         v["completion_tokens"] - before["by_model"].get(m, {}).get(
                                             "completion_tokens", 0))
                        for m, v in after["by_model"].items() if m in pricer.prices), Decimal(0))
    orc = oracle(trace, pricer)
    oracle_saved = baseline - orc.usd
    cache_saved = baseline - leo_cache_cost
    all_saved = baseline - leo_cost
    failed = sum(k["failed"] for k in by_kind.values())
    wrong = sum(k["wrong"] for k in by_kind.values())
    served = n - failed
    report = {
        "requests": n, "failed": failed, "served": served, "wrong": wrong,
        "wrong_rate": wrong / served if served else 0.0,
        "replay_seconds": round(replay_s, 1), "total_seconds": round(time.monotonic() - started, 1),
        "requests_per_second": round(n / replay_s, 1),
        "intents": len(trace.intents), "refused_layouts": trace.refused_layouts,
        "baseline": {"calls": n, "usd": float(baseline)},
        "oracle": {"calls": orc.calls, "usd": float(orc.usd), "calls_avoided": n - orc.calls,
                   "saved_usd": float(oracle_saved)},
        "leo": {"calls": upstream_calls, "calls_avoided": n - upstream_calls,
                "cache_only_usd": float(leo_cache_cost), "cache_saved_usd": float(cache_saved),
                "usd": float(leo_cost), "saved_usd": float(all_saved), "upstream_billed_usd": float(upstream_usd)},
        "of_oracle": {"calls": (n - upstream_calls) / (n - orc.calls) if n - orc.calls else 0.0,
                      "usd_cache": float(cache_saved / oracle_saved) if oracle_saved else 0.0,
                      "usd_all": float(all_saved / oracle_saved) if oracle_saved else 0.0},
        "headers": dict(headers),
        "by_kind": {k: dict(v) for k, v in by_kind.items()},
        "by_technique": analytics.get("by_technique", {}),
        "measured_by_technique": {k: float(v) for k, v in measured.items()},
        "analytics": {k: analytics.get(k) for k in ("requests", "upstream_calls", "cost_usd", "counterfactual_usd",
                                                    "saved_usd", "tokens_saved", "hit_rate")},
        "wrong_examples": wrong_examples,
    }
    print_report(report)
    return report


def print_report(r: dict[str, Any]) -> None:
    n = r["requests"]
    b, o, leo = r["baseline"], r["oracle"], r["leo"]
    print(f"\nSavings benchmark: {n} requests, {r['intents']} recurring intents, replayed in {r['replay_seconds']} s "
          f"({r['requests_per_second']} req/s), total {r['total_seconds']} s\n")
    print(f"{'':34}{'upstream calls':>16}{'calls avoided':>15}{'cost':>12}{'saved':>12}{'saved %':>9}")
    print(f"{'no LEO (baseline)':34}{b['calls']:>16}{0:>15}{_usd(b['usd']):>12}{_usd(0):>12}{'0.0%':>9}")
    print(f"{'oracle cache':34}{o['calls']:>16}{o['calls_avoided']:>15}{_usd(o['usd']):>12}"
          f"{_usd(o['saved_usd']):>12}{_pct(o['saved_usd'], b['usd']):>9}")
    print(f"{'LEO, caching techniques only':34}{leo['calls']:>16}{leo['calls_avoided']:>15}"
          f"{_usd(leo['cache_only_usd']):>12}{_usd(leo['cache_saved_usd']):>12}"
          f"{_pct(leo['cache_saved_usd'], b['usd']):>9}")
    print(f"{'LEO, all techniques (ledger)':34}{leo['calls']:>16}{leo['calls_avoided']:>15}{_usd(leo['usd']):>12}"
          f"{_usd(leo['saved_usd']):>12}{_pct(leo['saved_usd'], b['usd']):>9}")
    f = r["of_oracle"]
    print(f"\nLEO / oracle savings: calls {100 * f['calls']:.1f}%, dollars (caching only) {100 * f['usd_cache']:.1f}%, "
          f"dollars (all techniques) {100 * f['usd_all']:.1f}%")
    print(f"Wrong answers: {r['wrong']} of {r['served']} served ({100 * r['wrong_rate']:.2f}%); "
          f"failed requests: {r['failed']}")
    print(f"Upstream bill by the fake's own counters: {_usd(leo['upstream_billed_usd'])} "
          f"(ledger: {_usd(leo['usd'])})")
    print("\nBy technique: the ledger's figures (GET /v1/analytics), and the saving measured against the")
    print("baseline with the fake upstream's token rule (hits: the whole request; decomposed: the request")
    print("minus its part calls; misses: routing from the ledger, the rest of baseline minus cost to prompt")
    print("optimization):")
    print(f"  {'technique':22}{'requests':>10}{'tokens saved':>14}{'saved (ledger)':>16}{'saved (measured)':>18}")
    m = r["measured_by_technique"]
    for name, t in sorted(r["by_technique"].items(), key=lambda kv: -kv[1]["saved_usd"]):
        print(f"  {name:22}{t['requests']:>10}{t['tokens_saved']:>14}{_usd(t['saved_usd']):>16}"
              f"{_usd(m.get(name, 0)):>18}")
    a = r["analytics"]
    print(f"  {'total':22}{a['requests']:>10}{a['tokens_saved']:>14}{_usd(a['saved_usd']):>16}"
          f"{_usd(sum(m.values())):>18}   hit rate {a['hit_rate']}")
    print("\nBy kind of request (X-LEO-Cache counts):")
    cols = ["requests", "exact", "semantic", "dedup", "decomposed", "miss", "bypass", "routed", "wrong", "failed"]
    print("  " + f"{'kind':12}" + "".join(f"{c:>11}" for c in cols))
    for kind, counts in sorted(r["by_kind"].items()):
        print("  " + f"{kind:12}" + "".join(f"{counts.get(c, 0):>11}" for c in cols))
    if r["wrong_examples"]:
        print("\nWrong answers (first 20):")
        for w in r["wrong_examples"]:
            print(f"  [{w['kind']}/{w['cache']}/{w['verdict']}] {w['asked'][:90]!r} -> {w['served_tags']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--semantic-threshold", type=lambda v: None if v == "none" else float(v),
                        default=SEMANTIC_THRESHOLD,
                        help="the tenant's semantic_threshold (OptimizerSettings); 'none' keeps the default")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (database, server log)")
    args = parser.parse_args(argv)
    report = run(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
