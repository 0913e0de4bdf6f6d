"""Cassettes: recorded LLM exchanges, and how a request finds its cassette.

A cassette is a JSON file::

    {
      "name": "optimize find_duplicates",
      "match": {"all": ["def find_duplicates", "optimiz"], "any": []},
      "request_sha256": "…",            # optional: exact match of (model, messages)
      "model": "gpt-4.1",
      "content": "…completion text…",
      "finish_reason": "stop",
      "usage": {"prompt_tokens": 1520, "completion_tokens": 410},
      "latency_ms": 5200,
      "ttft_ms": 700
    }

A request matches a cassette when its ``request_sha256`` equals the request's
hash, or when every ``match.all`` string (and at least one ``match.any`` string,
if any are given) occurs in the request's messages. The most specific match
wins: an exact hash, else the one with the most match strings.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NOTHING_FOUND = (
    "I looked at this code and found no change that would make it faster while keeping its behaviour. "
    "No optimization is proposed."
)


@dataclass
class Cassette:
    name: str
    content: str
    model: str = "replay"
    finish_reason: str = "stop"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    ttft_ms: float = 0.0
    match_all: list[str] = field(default_factory=list)
    match_any: list[str] = field(default_factory=list)
    request_sha256: str | None = None
    path: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any], path: str = "") -> Cassette:
        match = data.get("match") or {}
        usage = data.get("usage") or {}
        content = data.get("content")
        if not isinstance(content, str):
            raise ValueError(f"{path}: cassette has no 'content' string")
        return cls(
            name=str(data.get("name") or os.path.basename(path)),
            content=content,
            model=str(data.get("model", "replay")),
            finish_reason=str(data.get("finish_reason", "stop")),
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_ms=float(data.get("latency_ms", 0)),
            ttft_ms=float(data.get("ttft_ms", 0)),
            match_all=[str(s) for s in match.get("all", [])],
            match_any=[str(s) for s in match.get("any", [])],
            request_sha256=data.get("request_sha256"),
            path=path,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.match_all or self.match_any:
            out["match"] = {"all": self.match_all, "any": self.match_any}
        if self.request_sha256:
            out["request_sha256"] = self.request_sha256
        out.update(
            model=self.model,
            content=self.content,
            finish_reason=self.finish_reason,
            usage={"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens},
            latency_ms=round(self.latency_ms, 1),
            ttft_ms=round(self.ttft_ms, 1),
        )
        return out

    def matches(self, text: str) -> bool:
        if not self.match_all and not self.match_any:
            return False
        return all(s in text for s in self.match_all) and (not self.match_any or any(s in text for s in self.match_any))


def request_text(messages: list[dict[str, Any]]) -> str:
    """The text of a chat request's messages (string or multi-part content)."""
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "\n".join(parts)


def request_hash(model: str, messages: list[dict[str, Any]]) -> str:
    canonical = json.dumps({"model": model, "messages": messages}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class Library:
    """The cassettes in a directory (re-read when a file changes)."""

    def __init__(self, directory: str | None) -> None:
        self.directory = directory
        self._stamp: tuple[tuple[str, float], ...] = ()
        self._cassettes: list[Cassette] = []

    def cassettes(self) -> list[Cassette]:
        if not self.directory:
            return []
        files = sorted(Path(self.directory).glob("*.json"))
        stamp = tuple((str(f), f.stat().st_mtime) for f in files)
        if stamp != self._stamp:
            loaded = []
            for file in files:
                loaded.append(Cassette.from_json(json.loads(file.read_text()), str(file)))
            self._cassettes, self._stamp = loaded, stamp
        return self._cassettes

    def find(self, model: str, messages: list[dict[str, Any]]) -> Cassette | None:
        cassettes = self.cassettes()
        digest = request_hash(model, messages)
        for cassette in cassettes:
            if cassette.request_sha256 == digest:
                return cassette
        text = request_text(messages)
        found = [c for c in cassettes if c.matches(text)]
        if not found:
            return None
        return max(found, key=lambda c: len(c.match_all) + len(c.match_any))

    def save(self, cassette: Cassette) -> str:
        if not self.directory:
            raise ValueError("no cassette directory to record into")
        os.makedirs(self.directory, exist_ok=True)
        slug = "".join(ch if ch.isalnum() else "-" for ch in cassette.name.lower()).strip("-")[:60]
        path = os.path.join(self.directory, f"{slug}-{(cassette.request_sha256 or '')[:8]}.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(cassette.to_json(), f, indent=2)
            f.write("\n")
        return path
