"""Parsing JSON without importing :mod:`json`.

``json.decoder`` imports ``re`` (several milliseconds here), and reading a run
back is on otel-run's critical path (the summary it prints when the command
ends). The C scanner ``json.decoder`` itself uses lives in ``_json`` and needs
nothing but a context object; this module builds that context. Where ``_json``
is missing (other Pythons), it falls back to :func:`json.loads`.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}[name]


_WHITESPACE = " \t\n\r"
_scan: Callable[[str, int], tuple[Any, int]] | None = None
try:
    from _json import make_scanner as _make_scanner

    _scan = _make_scanner(_Context())  # type: ignore[arg-type]
except ImportError:
    pass


def loads(data: bytes | str) -> Any:
    """Like :func:`json.loads`; raises ValueError on bad input, JSON nested
    deeper than the interpreter's recursion limit (about 1,000 levels) included."""
    try:
        return _loads(data)
    except RecursionError:
        raise ValueError(f"JSON nested too deep (over {_depth_limit()} levels)") from None


def _loads(data: bytes | str) -> Any:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    if _scan is None:
        import json

        return json.loads(text)
    start = 0
    while start < len(text) and text[start] in _WHITESPACE:
        start += 1
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"expecting a JSON value at char {exc.value}") from None
    except SystemError:
        # some errors (an unterminated string) are raised by ``_json`` through
        # ``json.decoder``, which is not imported here: let json say what is wrong
        import json

        return json.loads(text)
    while end < len(text) and text[end] in _WHITESPACE:
        end += 1
    if end != len(text):
        raise ValueError(f"extra data at char {end}")
    return value


def _depth_limit() -> int:
    import sys

    return sys.getrecursionlimit()
