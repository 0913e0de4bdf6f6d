from __future__ import annotations

import subprocess
from pathlib import Path

from otel_run.run._git import head_commit


def git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_head_commit_in_branches_packed_refs_detached_and_worktrees(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "commit", "-q", "--allow-empty", "-m", "one")
    sub = repo / "a" / "b"
    sub.mkdir(parents=True)
    assert head_commit(str(sub)) == git(repo, "rev-parse", "HEAD")
    git(repo, "pack-refs", "--all")
    assert head_commit(str(repo)) == git(repo, "rev-parse", "HEAD")
    git(repo, "commit", "-q", "--allow-empty", "-m", "two")
    git(repo, "checkout", "-q", "--detach", "HEAD~1")
    assert head_commit(str(repo)) == git(repo, "rev-parse", "HEAD")
    git(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "main")
    assert head_commit(str(tmp_path / "wt")) == git(repo, "rev-parse", "main")
    assert head_commit(str(tmp_path)) is None
