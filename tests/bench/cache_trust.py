"""Can the semantic cache be trusted? The frozen evaluation set, replayed through a live LEO.

Run from the repository root::

    python -m tests.bench.cache_trust --half test            # the figures to report
    python -m tests.bench.cache_trust --half tuning          # the only half to tune on
    python -m tests.bench.cache_trust --half tuning --part lookalikes --json /tmp/trust.json
    python -m tests.bench.cache_trust --set eval2 --half test   # the second held-out set's test half
    python -m tests.bench.cache_trust --data tests/bench/data/trust_dev.jsonl   # the dev set, whole
    python -m tests.bench.cache_trust --part existing        # the repository's older sets, live

The set is ``tests/bench/data/trust_eval.jsonl`` (format and split rule in
``tests/bench/data/trust_eval.md``): 431 look-alike records and 230 paraphrase groups, written
for issue #12 item 5 and frozen before any tuning. ``load_records(half=...)`` is the one way to
read it; a verifier being tuned must load ``half="tuning"`` only.

Everything runs through the real pipeline: the fake upstream in-process, a fresh database (a
temporary SQLite file, or ``DATABASE_URL``; ``REDIS_URL`` is passed on), one uvicorn LEO server,
one tenant with default settings, and the official ``openai`` SDK as the client (the harness is
``tests.bench.savings.Live``). The fake upstream's answer starts with ``ANSWER[<first 12 hex of
sha256(last user text)>]``, so a served answer says which question it was written for.

Parts (``--part``; all three by default)
----------------------------------------
lookalikes
    Per record, a fresh namespace (``X-LEO-Cache-Namespace``). The twin ``a`` is asked, then its
    3 paraphrases with ``Cache-Control: no-cache`` (no lookup, so each is stored as its own
    entry rather than served from ``a``'s): the partition holds the twin several times over, as
    a busy cache would. Once the entries are in the database and the server's replica has had
    time to load them, the look-alike ``b`` is asked. Nothing in that namespace is ``b``'s own
    answer, so ``X-LEO-Cache: exact|semantic`` is wrong; a ``decomposed`` answer is wrong when it
    holds a tag that is neither one of ``b``'s own parts (as ``decompose.split`` writes them) nor,
    for a compound ``b`` whose twin is one of its parts, the twin's; a miss must carry ``b``'s own
    tag. Conversations (``context``, ``tool_result``) send full ``messages`` lists; their last user
    texts are often identical, so the cache header decides. Reported: wrong rate, Wilson 95%.
paraphrases
    Per group, two fresh namespaces. "right away": ``texts[0]`` is asked and, the moment it
    returns, every other text at once (sent within a few ms). "later": ``texts[0]`` is asked,
    then the others 1.5 s later. Right = served a stored answer of the group (``texts[0]``'s, or
    another phrasing's that got stored first); missed = its own answer; wrong = anything else.
    Reported: right rate, Wilson 95%, per timing.
zipf
    One namespace, a seeded trace of ``--requests`` requests: 85% recurring intents drawn by Zipf
    popularity (1/rank, ranks shuffled) from the half's paraphrase groups, look-alike twins (with
    their paraphrases), look-alikes, and compound requests and their parts (single-turn records
    only: conversation look-alikes share a last text, so a tag could not tell them apart), the
    phrasing drawn with weight 1/(i+1)^0.5; 15% one-off requests from templates with random slots
    (they differ from each other only in numbers and names: look-alikes of each other too).
    ``--concurrency`` in flight. Oracle: a perfect cache pays one upstream call per intent, the
    first time. Reported: LEO's avoided upstream calls (the fake's own counter) as a share of the
    oracle's, and the wrong-answer rate with a Wilson 95% interval. Right = every tag served
    belongs to the request's intent (or, decomposed, to one of its parts).
existing
    The repository's older sets, through the same live path: ``hard_negatives.jsonl`` (per pair a
    fresh namespace holding ``stored``; any hit on ``query`` is wrong) and ``paraphrases.jsonl``
    (the same; a hit is right). The GPTCache and QQP sets need ``../shared/data`` and run in
    process: ``python -m tests.bench.cache_quality``; the savings workload (``savings_intents.json``):
    ``python -m tests.bench.savings``. Their commands are printed.

Timing: about 2 minutes per half on SQLite, 2-7 on PostgreSQL+Redis (the first run migrates),
on two shared cores; most of it is waiting for the replica, overlapped across ``--concurrency``
records. Baseline figures: docs/semantic_cache.md, "Evaluation set (frozen)".
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimizer.pipeline.decompose import split
from tests.bench.savings import TAG_RE, Live, warm_up

HERE = Path(__file__).resolve().parent / "data"
DATA = HERE / "trust_eval.jsonl"
# The held-out sets read with the hash split (``--set``): the first, written for issue #12 item 5,
# and a larger second one written later by people who never read the verifier (its .md says why).
SETS = {"eval": DATA, "eval2": HERE / "trust_eval2.jsonl"}
MODEL = "gpt-4o-mini"
HALVES = ("tuning", "test")
PARTS = ("lookalikes", "paraphrases", "zipf")
LATER_SECONDS = 1.5  # "later" paraphrases: after the replica has surely loaded the original
SETTLE_SECONDS = 0.8  # after the entries are in the database: the replica polls every 0.3 s
STORE_TIMEOUT = 10.0
ONE_OFF_SHARE = 0.15


# --- the data set --------------------------------------------------------------------------------

def family(record: dict[str, Any]) -> str:
    """The split key: the record's ``family`` (both directions of one compound pair), else its id."""
    return str(record.get("family") or record["id"])


def half_of(record: dict[str, Any]) -> str:
    """'tuning' when the last hex digit of sha256(family) is even, else 'test'."""
    digit = int(hashlib.sha256(family(record).encode("utf-8")).hexdigest()[-1], 16)
    return "tuning" if digit % 2 == 0 else "test"


def load_records(half: str | None = "tuning", path: Path = DATA) -> list[dict[str, Any]]:
    """The records of one half (``None``: both), in file order."""
    if half not in (None, *HALVES):
        raise ValueError(f"half must be one of {HALVES} or None, not {half!r}")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in records if half is None or half_of(r) == half]


def tag(text: str) -> str:
    """The fake upstream's name for the answer to ``text`` (see fake_upstream/content.py)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def last_user(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if m.get("role") == "user":
            return str(m.get("content") or "")
    return ""


def _body(messages: list[dict[str, Any]], record: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"model": MODEL, "messages": messages}
    if record.get("tools"):
        # After a tool result a model answers in text; tool_choice "none" makes the fake do so.
        body["tools"] = record["tools"]
        body["tool_choice"] = "none"
    return body


def _with_last_user(messages: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m.get("role") == "user":
            m["content"] = text
            return out
    raise ValueError("a conversation without a user message")


def lookalike_bodies(record: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the twin and its paraphrases, in the order stored; the look-alike to ask)."""
    if "messages_a" in record:
        twins = [record["messages_a"]] + [_with_last_user(record["messages_a"], p) for p in record["a_paraphrases"]]
        return [_body(m, record) for m in twins], _body(record["messages_b"], record)
    twins = [[{"role": "user", "content": t}] for t in [record["a"], *record["a_paraphrases"]]]
    return [_body(m, record) for m in twins], _body([{"role": "user", "content": record["b"]}], record)


def group_bodies(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One request per phrasing; the first is the original."""
    if "messages" in record:
        return [_body(m, record) for m in record["messages"]]
    return [_body([{"role": "user", "content": t}], record) for t in record["texts"]]


# --- statistics ----------------------------------------------------------------------------------

def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval for k successes in n trials (95% by default)."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class Tally:
    """Outcomes of one measurement: counts per verdict, per class, and a few examples."""

    counts: Counter[str] = field(default_factory=Counter)
    by_class: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    headers: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)
    # Off for the test half: whoever tunes the verifier reads this output, and must not see which
    # test records fail (only how many).
    keep_examples: bool = True

    def add(self, verdict: str, cls: str, cache: str, example: dict[str, Any] | None = None) -> None:
        self.counts[verdict] += 1
        self.by_class[cls][verdict] += 1
        self.headers[cache] += 1
        if example is not None and self.keep_examples:
            self.examples.append(example)

    @property
    def n(self) -> int:
        return sum(v for k, v in self.counts.items() if k != "failed")

    def rate(self, verdict: str) -> dict[str, Any]:
        k, n = self.counts[verdict], self.n
        lo, hi = wilson(k, n)
        return {"k": k, "n": n, "rate": k / n if n else 0.0, "ci95": [lo, hi]}

    def as_dict(self, verdict: str) -> dict[str, Any]:
        return {**self.rate(verdict), "counts": dict(self.counts), "headers": dict(self.headers),
                "by_class": {c: dict(v) for c, v in sorted(self.by_class.items())}, "examples": self.examples}


# --- talking to LEO ------------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    cache: str
    content: str
    sent_at: float
    error: str = ""

    @property
    def tags(self) -> list[str]:
        return TAG_RE.findall(self.content)


class Client:
    """The official async SDK against the live server, one namespace per call."""

    def __init__(self, base_url: str, key: str) -> None:
        import openai

        self._openai = openai
        self.sdk = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0, timeout=120)

    async def ask(self, body: dict[str, Any], namespace: str, *, no_cache: bool = False) -> Reply:
        headers = {"X-LEO-Cache-Namespace": namespace}
        if no_cache:
            headers["Cache-Control"] = "no-cache"
        sent = time.monotonic()
        try:
            raw = await self.sdk.chat.completions.with_raw_response.create(**body, extra_headers=headers)
            parsed = raw.parse()
            return Reply(raw.status_code, raw.headers.get("x-leo-cache", ""),
                         parsed.choices[0].message.content or "", sent)
        except self._openai.APIError as exc:
            return Reply(getattr(exc, "status_code", 0) or 0, "", "", sent, f"{type(exc).__name__}: {str(exc)[:200]}")

    async def close(self) -> None:
        await self.sdk.close()


class Stored:
    """Waits until a namespace's entries are in the database, then for the replica to load them."""

    def __init__(self, tenant_id: int) -> None:
        self.tenant_id = tenant_id

    def _count(self, namespace: str) -> int:
        # Imported here, not at the top: the models need django.setup(), which Live runs.
        from django.db import close_old_connections

        from optimizer.models import CacheEntry

        close_old_connections()
        return CacheEntry.objects.filter(tenant_id=self.tenant_id, namespace=namespace).count()

    async def wait(self, namespace: str, expected: int) -> bool:
        deadline = time.monotonic() + STORE_TIMEOUT
        while True:
            if await asyncio.to_thread(self._count, namespace) >= expected:
                await asyncio.sleep(SETTLE_SECONDS)
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)


async def bounded(items: Iterable[Any], worker: Any, concurrency: int) -> None:
    """Run ``worker(item)`` over ``items`` with at most ``concurrency`` running at once."""
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Any) -> None:
        async with gate:
            await worker(item)

    await asyncio.gather(*(one(i) for i in items))


# --- part (a): look-alikes -----------------------------------------------------------------------

def _part_tags(body: dict[str, Any]) -> set[str]:
    d = split(body)
    return {tag(last_user(p.request["messages"])) for p in d.parts} if d is not None else set()


def judge_lookalike(record: dict[str, Any], body: dict[str, Any], twins: list[dict[str, Any]], reply: Reply) -> str:
    """'right', 'wrong' or 'failed'; see the module docstring."""
    if reply.status != 200:
        return "failed"
    own = tag(last_user(body["messages"]))
    if reply.cache in ("exact", "semantic"):
        return "wrong"  # nothing stored in this namespace is the look-alike's own answer
    tags = set(reply.tags)
    if reply.cache == "decomposed":
        allowed = {own} | _part_tags(body)
        if record["class"] == "compound" and len(record["a"]) < len(record["b"]):
            allowed |= {tag(last_user(t["messages"])) for t in twins}  # the twin is one of b's parts
        return "right" if tags and tags <= allowed else "wrong"
    return "right" if reply.tags == [own] else "wrong"


async def run_lookalikes(client: Client, stored: Stored, records: list[dict[str, Any]], run_id: str,
                         concurrency: int, keep_examples: bool) -> Tally:
    tally = Tally(keep_examples=keep_examples)
    todo = [r for r in records if r["kind"] == "lookalike"]

    async def one(record: dict[str, Any]) -> None:
        ns = f"{run_id}:la:{record['id']}"
        twins, ask = lookalike_bodies(record)
        first = await client.ask(twins[0], ns)
        await asyncio.gather(*(client.ask(t, ns, no_cache=True) for t in twins[1:]))
        if not await stored.wait(ns, len(twins)):
            print(f"[trust] {record['id']}: only part of the twin was stored", file=sys.stderr)
        reply = await client.ask(ask, ns)
        verdict = judge_lookalike(record, ask, twins, reply)
        if first.status != 200:
            verdict = "failed"
        example = None
        if verdict != "right":
            example = {"id": record["id"], "class": record["class"], "stored": record["a"], "asked": record["b"],
                       "cache": reply.cache, "error": reply.error}
        tally.add(verdict, record["class"], reply.cache, example)

    await bounded(todo, one, concurrency)
    return tally


# --- part (b): paraphrase groups -----------------------------------------------------------------

def judge_paraphrase(bodies: list[dict[str, Any]], i: int, reply: Reply) -> str:
    if reply.status != 200:
        return "failed"
    own = tag(last_user(bodies[i]["messages"]))
    # The other phrasings' answers. Two conversations of one group may end with the same
    # follow-up ("And how long does it take?" after a first turn reworded): then the answer
    # served from the cache carries this request's own tag, and the cache header tells a hit
    # from a miss (each group runs in a fresh namespace, where only its own answers are stored).
    others = {tag(last_user(b["messages"])) for j, b in enumerate(bodies) if j != i}
    tags = reply.tags
    if reply.cache in ("exact", "semantic") and len(tags) == 1 and tags[0] in others:
        return "right"
    if tags == [own]:
        return "missed"
    return "wrong"


async def run_paraphrases(client: Client, records: list[dict[str, Any]], run_id: str,
                          concurrency: int, keep_examples: bool) -> dict[str, Tally]:
    out = {"right_away": Tally(keep_examples=keep_examples), "later": Tally(keep_examples=keep_examples)}
    gaps: list[float] = []
    todo = [r for r in records if r["kind"] == "paraphrase_group"]

    async def timing(record: dict[str, Any], name: str, wait: float) -> None:
        ns = f"{run_id}:pg:{name}:{record['id']}"
        bodies = group_bodies(record)
        first = await client.ask(bodies[0], ns)
        returned = time.monotonic()
        if wait:
            await asyncio.sleep(wait)
        replies = await asyncio.gather(*(client.ask(b, ns) for b in bodies[1:]))
        if not wait:
            gaps.extend(r.sent_at - returned for r in replies)
        for i, reply in enumerate(replies, start=1):
            verdict = "failed" if first.status != 200 else judge_paraphrase(bodies, i, reply)
            example = None
            if verdict != "right":
                example = {"id": record["id"], "class": record["class"], "original": record["texts"][0],
                           "asked": record["texts"][i], "cache": reply.cache, "verdict": verdict,
                           "error": reply.error or first.error}
            out[name].add(verdict, record["class"], reply.cache, example)

    async def one(record: dict[str, Any]) -> None:
        await asyncio.gather(timing(record, "right_away", 0.0), timing(record, "later", LATER_SECONDS))

    await bounded(todo, one, concurrency)
    if gaps:
        gaps.sort()
        print(f"[trust] right-away paraphrases sent {1000 * gaps[len(gaps) // 2]:.1f} ms (median), "
              f"{1000 * gaps[-1]:.1f} ms (max) after the original returned", file=sys.stderr)
    return out


# --- part (c): a Zipf trace ----------------------------------------------------------------------

@dataclass
class Intent:
    """One question with one right answer: the requests that ask it, and the intents that are its parts."""

    id: str
    kind: str
    bodies: list[dict[str, Any]]
    parts: set[str] = field(default_factory=set)


def build_intents(records: list[dict[str, Any]]) -> list[Intent]:
    by_text: dict[str, Intent] = {}
    intents: list[Intent] = []

    def intent_for(text: str, kind: str) -> Intent:
        if text not in by_text:
            by_text[text] = Intent(f"t{len(intents)}", kind, [])
            intents.append(by_text[text])
        return by_text[text]

    for r in records:
        if r["kind"] == "paraphrase_group":
            it = Intent(r["id"], f"paraphrase:{r['class']}", group_bodies(r))
            intents.append(it)
            for t in r["texts"]:
                by_text.setdefault(t, it)
        elif "messages_a" not in r:  # conversation look-alikes share a last text: tags cannot tell them apart
            kind = "compound" if r["class"] == "compound" else "lookalike"
            a = intent_for(r["a"], kind)
            for t in [r["a"], *r["a_paraphrases"]]:
                if t not in by_text or by_text[t] is a:
                    by_text[t] = a
                    body = _body([{"role": "user", "content": t}], r)
                    if body not in a.bodies:
                        a.bodies.append(body)
            b = intent_for(r["b"], kind)
            if not b.bodies:
                b.bodies.append(_body([{"role": "user", "content": r["b"]}], r))
            if r["class"] == "compound":
                small, big = (a, b) if len(r["a"]) < len(r["b"]) else (b, a)
                big.parts.add(small.id)
    # Two intents whose last user texts collide could not be told apart by their tags: drop both.
    owners: dict[str, set[str]] = defaultdict(set)
    for it in intents:
        for body in it.bodies:
            owners[tag(last_user(body["messages"]))].add(it.id)
    clash = {i for ids in owners.values() if len(ids) > 1 for i in ids}
    return [it for it in intents if it.id not in clash and it.bodies]


ONE_OFF = (
    ("What is {a} multiplied by {b}?", lambda r: {"a": r.randint(13, 999), "b": r.randint(13, 999)}),
    ("Plan a {d}-day walking trip in {place} in {month}.", lambda r: {
        "d": r.randint(2, 9), "place": r.choice(["the Dolomites", "Patagonia", "the Lake District", "Hokkaido",
                                                   "the Scottish Highlands", "Madeira", "Tasmania", "the Azores"]),
        "month": r.choice(["March", "May", "June", "September", "October"])}),
    ("Write a four-line poem about a {adj} {noun}.", lambda r: {
        "adj": r.choice(["sleepy", "curious", "rusty", "tiny", "brave", "lonely", "noisy", "golden"]),
        "noun": r.choice(["lighthouse", "teapot", "fox", "bicycle", "violin", "cactus", "submarine", "owl"])}),
    ("Convert {n} {u1} to {u2}.", lambda r: {"n": r.randint(2, 950), **dict(zip(("u1", "u2"), r.choice([
        ("inches", "centimeters"), ("pounds", "kilograms"), ("miles", "kilometers"), ("gallons", "liters"),
        ("ounces", "grams")]), strict=True))}),
    ("Suggest a {cuisine} dinner menu for {k} guests with a budget of ${b}.", lambda r: {
        "cuisine": r.choice(["Thai", "Greek", "Mexican", "Ethiopian", "Peruvian", "Lebanese", "Korean"]),
        "k": r.randint(2, 14), "b": r.choice(range(40, 400, 10))}),
    ("In Python, write a function that returns the {k}th {thing} of a list.", lambda r: {
        "k": r.randint(2, 12), "thing": r.choice(["largest element", "smallest element", "most common element"])}),
)


@dataclass
class TraceItem:
    intent: str
    kind: str
    body: dict[str, Any]


def build_trace(intents: list[Intent], n: int, seed: int) -> tuple[list[TraceItem], dict[str, str]]:
    """The seeded request sequence, and tag -> intent for every text it may be answered with."""
    rng = random.Random(seed)
    ranked = list(intents)
    rng.shuffle(ranked)
    weights = [1 / (rank + 1) for rank in range(len(ranked))]
    owner = {tag(last_user(b["messages"])): it.id for it in intents for b in it.bodies}
    items: list[TraceItem] = []
    seen_one_offs: set[str] = set()
    while len(items) < n:
        if rng.random() < ONE_OFF_SHARE:
            template, slots = rng.choice(ONE_OFF)
            text = template.format(**slots(rng))
            if text in seen_one_offs:
                continue
            seen_one_offs.add(text)
            intent_id = f"one-off:{len(seen_one_offs)}"
            owner[tag(text)] = intent_id
            items.append(TraceItem(intent_id, "one-off", {"model": MODEL,
                                                          "messages": [{"role": "user", "content": text}]}))
            continue
        it = rng.choices(ranked, weights)[0]
        phrasing = rng.choices(range(len(it.bodies)), [1 / (i + 1) ** 0.5 for i in range(len(it.bodies))])[0]
        items.append(TraceItem(it.id, it.kind, it.bodies[phrasing]))
    return items, owner


def judge_trace(item: TraceItem, reply: Reply, owner: dict[str, str], parts_of: dict[str, set[str]]) -> str:
    if reply.status != 200:
        return "failed"
    tags = reply.tags
    if not tags:
        return "wrong"
    if reply.cache == "decomposed":
        own_parts = _part_tags(item.body)
        allowed_intents = {item.intent} | parts_of.get(item.intent, set())
        ok = all(t in own_parts or owner.get(t) in allowed_intents for t in tags)
        return "right" if ok else "wrong"
    return "right" if len(tags) == 1 and owner.get(tags[0]) == item.intent else "wrong"


async def run_zipf(client: Client, upstream: Any, records: list[dict[str, Any]], run_id: str, n: int, seed: int,
                   concurrency: int, keep_examples: bool) -> dict[str, Any]:
    intents = build_intents(records)
    items, owner = build_trace(intents, n, seed)
    parts_of = {it.id: it.parts for it in intents}
    ns = f"{run_id}:zipf"
    tally = Tally(keep_examples=keep_examples)
    avoided_wrong = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(items)):
        queue.put_nowait(i)
    before = upstream.stats()["chat"]

    async def worker() -> None:
        nonlocal avoided_wrong
        while not queue.empty():
            item = items[queue.get_nowait()]
            reply = await client.ask(item.body, ns)
            verdict = judge_trace(item, reply, owner, parts_of)
            example = None
            if verdict != "right":
                example = {"intent": item.intent, "asked": last_user(item.body["messages"]), "cache": reply.cache,
                           "served": [owner.get(t, "?") for t in reply.tags]}
            if verdict == "wrong" and reply.cache in ("exact", "semantic", "dedup"):
                avoided_wrong += 1
            tally.add(verdict, item.kind, reply.cache, example)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    calls = upstream.stats()["chat"] - before
    oracle_calls = len({item.intent for item in items})
    oracle_avoided, leo_avoided = len(items) - oracle_calls, len(items) - calls
    # A call avoided by serving a wrong answer is no saving: "right" counts only the others.
    right_avoided = leo_avoided - avoided_wrong
    return {"requests": len(items), "intents": len(intents), "oracle_calls": oracle_calls, "leo_calls": calls,
            "oracle_avoided": oracle_avoided, "leo_avoided": leo_avoided, "leo_avoided_wrong": avoided_wrong,
            "of_oracle": leo_avoided / oracle_avoided if oracle_avoided else 0.0,
            "right_of_oracle": right_avoided / oracle_avoided if oracle_avoided else 0.0,
            "wrong": tally.as_dict("wrong")}


# --- the repository's older sets, live -----------------------------------------------------------

async def run_existing(client: Client, stored: Stored, run_id: str, concurrency: int) -> dict[str, Tally]:
    out: dict[str, Tally] = {}
    for name, positive in (("hard_negatives", False), ("paraphrases", True)):
        rows = [json.loads(x) for x in (HERE / f"{name}.jsonl").read_text().splitlines() if x.strip()]
        tally = out[name] = Tally()

        async def one(pair: tuple[int, dict[str, Any]], positive: bool = positive, tally: Tally = tally,
                      name: str = name) -> None:
            i, row = pair
            ns = f"{run_id}:{name}:{i}"
            await client.ask({"model": MODEL, "messages": [{"role": "user", "content": row["stored"]}]}, ns)
            await stored.wait(ns, 1)
            reply = await client.ask({"model": MODEL, "messages": [{"role": "user", "content": row["query"]}]}, ns)
            if reply.status != 200:
                tally.add("failed", row.get("kind", "-"), reply.cache)
                return
            served = reply.tags == [tag(row["stored"])]
            verdict = ("right" if served else "missed") if positive else ("wrong" if served else "right")
            tally.add(verdict, row.get("kind", "-"), reply.cache)

        await bounded(list(enumerate(rows)), one, concurrency)
    return out


# --- report --------------------------------------------------------------------------------------

def _ci(d: dict[str, Any]) -> str:
    lo, hi = d["ci95"]
    failed = d["counts"].get("failed", 0)
    return (f"{100 * d['rate']:5.1f}%  [{100 * lo:4.1f}, {100 * hi:4.1f}]  ({d['k']}/{d['n']})"
            + (f"  {failed} failed" if failed else ""))


def print_report(r: dict[str, Any]) -> None:
    split_sets = {path.name for path in SETS.values()}
    which = f"{r['half']} half of {r['data']}" if r.get("data", DATA.name) in split_sets else r["data"]
    print(f"\nTrust benchmark, {which} ({r['records']} records), "
          f"{r['seconds']:.0f} s, server: {r['database']}\n")
    print(f"{'measurement':44} {'rate  [95% CI]  (k/n)':>36}")
    if "lookalikes" in r:
        print(f"{'look-alikes served a foreign answer (wrong)':44} {_ci(r['lookalikes']):>36}")
    for timing in ("right_away", "later"):
        if "paraphrases" in r:
            label = f"paraphrases served the group's answer, {timing.replace('_', ' ')}"
            print(f"{label:44} {_ci(r['paraphrases'][timing]):>36}")
    if "zipf" in r:
        z = r["zipf"]
        print(f"{'zipf trace: wrong answers':44} {_ci(z['wrong']):>36}")
        print(f"{'zipf trace: avoided calls, LEO / oracle':44} {100 * z['of_oracle']:35.1f}%"
              f"   ({z['leo_avoided']} / {z['oracle_avoided']} of {z['requests']} requests)")
        print(f"{'  ... counting only right answers':44} {100 * z['right_of_oracle']:35.1f}%"
              f"   ({z['leo_avoided'] - z['leo_avoided_wrong']} / {z['oracle_avoided']})")
    for name in ("hard_negatives", "paraphrases_old"):
        if name in r:
            what = "wrong" if name == "hard_negatives" else "right"
            print(f"{'existing ' + name.replace('_old', '') + ' (' + what + ')':44} {_ci(r[name]):>36}")
    if "lookalikes" in r:
        print("\nlook-alikes by class (wrong / n):")
        for cls, c in r["lookalikes"]["by_class"].items():
            n = sum(v for k, v in c.items() if k != "failed")
            print(f"  {cls:14} {c.get('wrong', 0):3d} / {n:3d}")
    if "paraphrases" in r:
        print("\nparaphrases by class (right / n: right away, later):")
        ra, la = r["paraphrases"]["right_away"]["by_class"], r["paraphrases"]["later"]["by_class"]
        for cls in sorted(set(ra) | set(la)):
            cells = []
            for c in (ra.get(cls, {}), la.get(cls, {})):
                cells.append(f"{c.get('right', 0):3d} / {sum(v for k, v in c.items() if k != 'failed'):3d}")
            print(f"  {cls:14} {cells[0]}   {cells[1]}")
    for key, title in (("lookalikes", "look-alikes served a foreign answer"),):
        if key in r and r[key]["examples"]:
            print(f"\n{title} (first 25 of {len(r[key]['examples'])}):")
            for e in r[key]["examples"][:25]:
                print(f"  {e['id']} [{e['class']}/{e['cache']}] stored {e['stored'][:60]!r} asked {e['asked'][:60]!r}")
    if "zipf" in r:
        print("\nzipf trace by kind of request (wrong / n):")
        for kind, c in r["zipf"]["wrong"]["by_class"].items():
            n = sum(v for k, v in c.items() if k != "failed")
            print(f"  {kind:24} {c.get('wrong', 0):3d} / {n:4d}")
    if "zipf" in r and r["zipf"]["wrong"]["examples"]:
        print("\nzipf trace, wrong answers (first few):")
        for e in r["zipf"]["wrong"]["examples"][:10]:
            print(f"  [{e['cache']}] {e['asked'][:70]!r} -> {e['served']}")
    print("\nOther sets: python -m tests.bench.cache_quality   (GPTCache, QQP, hard negatives, paraphrases;"
          " in process)\n            python -m tests.bench.savings         (the savings workload, live)")


def progress(message: str) -> None:
    print(f"[trust] {message}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    half = None if args.half == "both" else args.half
    # Another set in the same format (``--data``, e.g. trust_dev.jsonl) is read whole: no split.
    records = load_records(None, args.data) if args.data else load_records(half, SETS[args.set])
    parts = args.part or list(PARTS)
    workdir = Path(tempfile.mkdtemp(prefix="leo-trust-"))
    progress(f"{len(records)} records ({args.data.name if args.data else f'{args.half} half of {SETS[args.set].name}'}); starting the database, fake upstream and LEO server")
    live = Live(workdir)
    report: dict[str, Any] = {"half": "all" if args.data else args.half, "records": len(records),
                              "data": (args.data or SETS[args.set]).name,
                              "database": "PostgreSQL" if "postgres" in os.environ.get("DATABASE_URL", "")
                              else "SQLite"}
    try:
        warm_up(live)
        settings = {"semantic_threshold": args.semantic_threshold} if args.semantic_threshold is not None else {}
        tenant_id, key = live.tenant("bench-trust", routing=False, **settings)
        run_id = uuid.uuid4().hex[:8]
        examples = args.half == "tuning" or args.show_test_examples or bool(args.data)

        async def drive() -> None:
            client = Client(live.url, key)
            stored = Stored(tenant_id)
            try:
                if "lookalikes" in parts:
                    progress("look-alikes")
                    report["lookalikes"] = (await run_lookalikes(client, stored, records, run_id, args.concurrency,
                                                                 examples)).as_dict("wrong")
                if "paraphrases" in parts:
                    progress("paraphrase groups")
                    res = await run_paraphrases(client, records, run_id, args.concurrency, examples)
                    report["paraphrases"] = {k: v.as_dict("right") for k, v in res.items()}
                if "zipf" in parts:
                    progress(f"zipf trace, {args.requests} requests")
                    report["zipf"] = await run_zipf(client, live.upstream, records, run_id, args.requests,
                                                    args.seed, min(args.concurrency, 4), examples)
                if "existing" in parts:
                    progress("the repository's older sets")
                    res = await run_existing(client, stored, run_id, args.concurrency)
                    report["hard_negatives"] = res["hard_negatives"].as_dict("wrong")
                    report["paraphrases_old"] = res["paraphrases"].as_dict("right")
            finally:
                await client.close()

        asyncio.run(drive())
    finally:
        live.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report["seconds"] = time.monotonic() - started
    print_report(report)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--half", choices=[*HALVES, "both"], default="tuning",
                        help="which half of the set (tune on 'tuning' only; report 'test')")
    parser.add_argument("--set", choices=list(SETS), default="eval",
                        help="which held-out set --half splits (default: trust_eval.jsonl)")
    parser.add_argument("--part", action="append", choices=[*PARTS, "existing"],
                        help="run only this part (repeatable); default: lookalikes, paraphrases, zipf")
    parser.add_argument("--requests", type=int, default=1200, help="zipf trace length")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--concurrency", type=int, default=8, help="records in flight (zipf: at most 4 requests)")
    parser.add_argument("--semantic-threshold", type=float, default=None,
                        help="the tenant's semantic_threshold (default: the product default)")
    parser.add_argument("--show-test-examples", action="store_true",
                        help="list failing records of the test half too (not for whoever tunes the verifier)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--data", type=Path, help="another set in the same format, read whole (default: the halves of trust_eval.jsonl)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (database, server log)")
    args = parser.parse_args(argv)
    report = run(args)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
