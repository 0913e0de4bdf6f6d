"""The git commit of a working directory, read from ``.git`` directly.

Running ``git rev-parse HEAD`` would start a process (milliseconds, and a
process in the trace); reading three small files costs microseconds.
"""

from __future__ import annotations

import os


def head_commit(cwd: str) -> str | None:
    """The commit ``HEAD`` points at, or None outside a repository."""
    git_dir = _find_git_dir(cwd)
    if git_dir is None:
        return None
    try:
        head = _read(os.path.join(git_dir, "HEAD"))
        if not head.startswith("ref:"):
            return head if _is_sha(head) else None
        ref = head[4:].strip()
        common = _common_dir(git_dir)
        for base in (git_dir, common):
            path = os.path.join(base, *ref.split("/"))
            if os.path.isfile(path):
                sha = _read(path)
                return sha if _is_sha(sha) else None
        with open(os.path.join(common, "packed-refs"), encoding="utf-8") as f:
            for line in f:
                sha, _, name = line.strip().partition(" ")
                if name == ref and _is_sha(sha):
                    return sha
    except OSError:
        return None
    return None


def _find_git_dir(cwd: str) -> str | None:
    path = os.path.abspath(cwd)
    while True:
        candidate = os.path.join(path, ".git")
        if os.path.isdir(candidate):
            return candidate
        if os.path.isfile(candidate):  # worktree or submodule: "gitdir: <path>"
            try:
                text = _read(candidate)
            except OSError:
                return None
            if text.startswith("gitdir:"):
                return os.path.normpath(os.path.join(path, text[7:].strip()))
            return None
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def _common_dir(git_dir: str) -> str:
    try:
        return os.path.normpath(os.path.join(git_dir, _read(os.path.join(git_dir, "commondir"))))
    except OSError:
        return git_dir


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read().strip()


def _is_sha(text: str) -> bool:
    return len(text) in (40, 64) and all(c in "0123456789abcdef" for c in text)
