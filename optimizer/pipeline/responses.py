"""OpenAI response shapes: assembling a stream into one response, and replaying one as a stream."""

from __future__ import annotations

import json
import time
from typing import Any

from leo_optima.core.db import has_nul

DONE = b"data: [DONE]\n\n"


def sse(event: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


class StreamAssembler:
    """Accumulates chat (or completions) stream chunks into the equivalent non-stream response."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.meta: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None
        self.chunks = 0

    def add(self, event: dict[str, Any]) -> None:
        self.chunks += 1
        if not self.meta:
            self.meta = {k: event.get(k) for k in ("id", "created", "model", "system_fingerprint") if k in event}
        if event.get("usage"):
            self.usage = event["usage"]
        for ch in event.get("choices") or []:
            idx = ch.get("index", 0)
            acc = self.choices.setdefault(idx, {"index": idx, "content": [], "role": "assistant",
                                                "tool_calls": {}, "finish_reason": None, "logprobs": None})
            if self.endpoint == "completions":
                acc["content"].append(ch.get("text") or "")
            else:
                delta = ch.get("delta") or {}
                if delta.get("role"):
                    acc["role"] = delta["role"]
                if delta.get("content"):
                    acc["content"].append(delta["content"])
                for tc in delta.get("tool_calls") or []:
                    slot = acc["tool_calls"].setdefault(tc.get("index", 0), {"id": None, "type": "function",
                                                                             "function": {"name": "", "arguments": ""}})
                    if tc.get("id"):
                        slot["id"] = tc["id"]
                    fn = tc.get("function") or {}
                    if fn.get("name"):
                        slot["function"]["name"] += fn["name"]
                    if fn.get("arguments"):
                        slot["function"]["arguments"] += fn["arguments"]
            if ch.get("finish_reason"):
                acc["finish_reason"] = ch["finish_reason"]
            if ch.get("logprobs") is not None:
                acc["logprobs"] = ch["logprobs"]

    @property
    def complete(self) -> bool:
        return bool(self.choices) and all(c["finish_reason"] for c in self.choices.values())

    def response(self) -> dict[str, Any]:
        choices = []
        for idx in sorted(self.choices):
            acc = self.choices[idx]
            text = "".join(acc["content"])
            if self.endpoint == "completions":
                choices.append({"index": idx, "text": text, "finish_reason": acc["finish_reason"],
                                "logprobs": acc["logprobs"]})
                continue
            message: dict[str, Any] = {"role": acc["role"], "content": text if text or not acc["tool_calls"] else None}
            if acc["tool_calls"]:
                message["tool_calls"] = [acc["tool_calls"][i] for i in sorted(acc["tool_calls"])]
            choices.append({"index": idx, "message": message, "finish_reason": acc["finish_reason"],
                            "logprobs": acc["logprobs"]})
        out = {**self.meta, "object": "text_completion" if self.endpoint == "completions" else "chat.completion",
               "choices": choices}
        if self.usage:
            out["usage"] = self.usage
        return out


def usage_of(response: dict[str, Any]) -> tuple[int, int]:
    usage = response.get("usage") or {}
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


def answer_text(response: dict[str, Any]) -> str:
    parts = []
    for ch in response.get("choices") or []:
        if "message" in ch:
            parts.append((ch["message"] or {}).get("content") or "")
        else:
            parts.append(ch.get("text") or "")
    return "\n".join(parts)


def is_storable(response: dict[str, Any]) -> bool:
    """Only complete, plain answers are cached: no tool calls, no truncation, no content filter."""
    choices = response.get("choices") or []
    if not choices:
        return False
    for ch in choices:
        msg = ch.get("message") or {}
        if msg.get("tool_calls") or msg.get("function_call"):
            return False
        if ch.get("finish_reason") not in ("stop", "length") or ch.get("finish_reason") is None:
            return False
        if ch.get("finish_reason") == "length":
            return False
    # The cache's row keeps the answer in jsonb, which refuses NUL characters: such an answer
    # (LLMs practically never send one) is served but not cached, so every cache layer agrees.
    return not has_nul(choices)


def fresh(response: dict[str, Any], response_id: str) -> dict[str, Any]:
    """A stored response re-issued for a new request: new id and timestamp, same content and usage."""
    out = dict(response)
    out["id"] = response_id
    out["created"] = int(time.time())
    return out


def replay_as_stream(response: dict[str, Any], include_usage: bool, pieces: int = 8) -> list[bytes]:
    """A stored chat response as the SSE chunks a real stream would have sent."""
    base = {"id": response.get("id"), "object": "chat.completion.chunk", "created": response.get("created"),
            "model": response.get("model")}
    if response.get("system_fingerprint"):
        base["system_fingerprint"] = response["system_fingerprint"]
    out: list[bytes] = []
    for ch in response.get("choices") or []:
        idx = ch.get("index", 0)
        msg = ch.get("message") or {}
        out.append(sse({**base, "choices": [{"index": idx, "delta": {"role": msg.get("role", "assistant"),
                                                                     "content": ""},
                                             "logprobs": None, "finish_reason": None}]}))
        for piece in split_text(msg.get("content") or "", pieces):
            out.append(sse({**base, "choices": [{"index": idx, "delta": {"content": piece}, "logprobs": None,
                                                 "finish_reason": None}]}))
        out.append(sse({**base, "choices": [{"index": idx, "delta": {}, "logprobs": None,
                                             "finish_reason": ch.get("finish_reason") or "stop"}]}))
    if include_usage:
        out.append(sse({**base, "choices": [], "usage": response.get("usage")}))
    out.append(DONE)
    return out


def replay_completion_as_stream(response: dict[str, Any], include_usage: bool) -> list[bytes]:
    """A stored completions response as the SSE chunks a real stream would have sent."""
    base = {k: response.get(k) for k in ("id", "created", "model")}
    out = [sse({**base, "object": "text_completion", "choices": [
        {"index": c.get("index", 0), "text": c.get("text", ""), "logprobs": None,
         "finish_reason": c.get("finish_reason")}]}) for c in response.get("choices") or []]
    if include_usage:
        out.append(sse({**base, "object": "text_completion", "choices": [], "usage": response.get("usage")}))
    out.append(DONE)
    return out


def split_text(text: str, pieces: int) -> list[str]:
    """Split text into about `pieces` chunks on word boundaries, losing nothing."""
    if not text:
        return []
    words = text.split(" ")
    size = max(1, -(-len(words) // pieces))
    return [" ".join(words[i:i + size]) + (" " if i + size < len(words) else "") for i in range(0, len(words), size)]
