"""The hooks on children: the environment a child inherits."""

from __future__ import annotations

from otel_run.bootstrap import _children


def test_with_site_dir_is_first_and_once() -> None:
    path = _children.with_site_dir(f"/a:{_children.SITE_DIR}:/b")
    assert path.split(":") == [_children.SITE_DIR, "/a", "/b"]
    assert _children.with_site_dir(None) == _children.SITE_DIR
