"""LEO's fake OpenAI-compatible upstream: a dev/test package, not part of the product.

A real HTTP server on loopback that answers deterministically in OpenAI's wire format, with
configurable latency, errors, resets, hangs and streaming faults. Tests and benchmarks start it
in-process (``run_in_thread``) or as a process (``python -m fake_upstream``, or
``python manage.py fake_upstream``); ``make run`` starts it as the clearly labelled demo upstream
when no ``LEO_UPSTREAM_URL`` is set. It needs only the standard library, aiohttp and uvloop (all
in requirements/base.txt) and imports nothing from Django or the apps. See docs/fake_upstream.md.

- ``content``: the ANSWER tag, filler and embedding vectors, the token rule;
- ``protocol``: OpenAI's wire format: JSON/SSE encoding, error envelopes, request fields;
- ``answers``: a request body -> a JSON answer or SSE events (chat, completions, embeddings, models);
- ``knobs``: the knobs and their validation; ``controls``: knobs, counters and fault decisions;
- ``streaming``: sending responses, paced or cut streams, closing connections (reset/drop);
- ``app``: the ASGI app (``FakeUpstream``): routing, the order of faults, the control endpoints;
- ``serving``: aiohttp's public server around it, the in-thread runner and the CLI.
"""

from __future__ import annotations

from .answers import MODELS, prepare_chat
from .app import FakeUpstream
from .content import answer_tag, answer_text, content_text, count_tokens, last_user_text
from .knobs import Knobs, validate_knobs
from .protocol import iter_sse_data
from .serving import RunningFakeUpstream, add_cli_arguments, knobs_from_options, run_in_thread, serve

__all__ = [
    "MODELS",
    "FakeUpstream",
    "Knobs",
    "RunningFakeUpstream",
    "add_cli_arguments",
    "answer_tag",
    "answer_text",
    "content_text",
    "count_tokens",
    "iter_sse_data",
    "knobs_from_options",
    "last_user_text",
    "prepare_chat",
    "run_in_thread",
    "serve",
    "validate_knobs",
]
