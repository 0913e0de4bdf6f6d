"""Stable span paths: the same span in two runs gets the same path.

A path is the chain of span names from the trace's root to the span, each with
its service where the service changes. Names carry run-specific parts — ids,
temporary directories, ports, pids — that :class:`Normalizer` replaces with
placeholders, so ``GET /items/3f9c…`` in one run and ``GET /items/a41b…`` in
the next are one path, and repeated siblings fold into one path with a count.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable

SEP = "\x1f"
"""Separates a path's segments inside a key (never in a span name after normalising)."""
ROOT = "(root)"
ORPHANS = "(orphan)"
DEEPER = "…"
"""The segment standing for the levels a too deep path leaves out (see ``_profile.MAX_PATH_DEPTH``)."""
SHOWN_SEP = " > "

_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_HEX_ID = r"\b(?:0x)?(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"
_PORT = r"(?<=[\w\]]):\d{2,5}\b"
_NUMBER = r"(?<![\w.\-])\d{2,}(?![\w.])"
_TEMP_ROOTS = ("/tmp", "/var/tmp", "/dev/shm", "/private/tmp", "/var/folders/[\\w-]+/[\\w-]+/T")


class Normalizer:
    """Replaces the run-specific parts of span names.

    Args:
        extra: more regular expressions; each match becomes ``{*}``.
        temp_dir: the machine's temporary directory, if not one of the usual.
    """

    def __init__(self, extra: Iterable[str] = (), temp_dir: str | None = None) -> None:
        roots = list(_TEMP_ROOTS)
        temp_dir = temp_dir if temp_dir is not None else tempfile.gettempdir()
        if temp_dir and re.escape(temp_dir) not in roots:
            roots.append(re.escape(temp_dir.rstrip("/")))
        self._rules: list[tuple[re.Pattern[str], str]] = [(re.compile(pattern), "{*}") for pattern in extra]
        self._rules += [
            (re.compile("(?:" + "|".join(roots) + r")/[^/\s'\"]+"), "{tmp}"),
            (re.compile(_UUID), "{uuid}"),
            (re.compile(_HEX_ID), "{id}"),
            (re.compile(_PORT), ":{port}"),
            (re.compile(_NUMBER), "{n}"),
        ]
        self._quick = re.compile(r"[\d/]")
        self.cache: dict[str, str] = {}
        """Names seen, normalised (read directly by hot loops)."""

    def __call__(self, name: str) -> str:
        cached = self.cache.get(name)
        if cached is not None:
            return cached
        out = name.replace(SEP, " ")
        if self._rules and (self._quick.search(out) or len(self._rules) > 5):
            for pattern, replacement in self._rules:
                out = pattern.sub(replacement, out)
        if len(self.cache) < 100_000:
            self.cache[name] = out
        return out


def segment(service: str, name: str, parent_service: str | None) -> str:
    """One path segment: the name, prefixed with ``[service]`` where the
    service changes (and at the root)."""
    return name if service == parent_service else f"[{service}] {name}"


def shown(key: str) -> str:
    """The path as people read it: ``a > [svc] b > c``."""
    return key.replace(SEP, SHOWN_SEP)


def depth(key: str) -> int:
    return key.count(SEP)


def leaf(key: str) -> str:
    return key.rsplit(SEP, 1)[-1]


def parent(key: str) -> str | None:
    return key.rsplit(SEP, 1)[0] if SEP in key else None
