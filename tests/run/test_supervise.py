"""The supervisor's pieces that need no process of their own to test."""

from __future__ import annotations

import signal

import pytest

from otel_run import _env
from otel_run.run._supervise import Child, take_caller_state


@pytest.fixture(autouse=True)
def _fresh_caller_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Child, "caller_ignored", frozenset())


def test_the_caller_s_ignored_signals_come_from_the_launcher_and_leave_the_environment() -> None:
    environ = {_env.OTEL_RUN_CALLER_SIGIGN: str((1 << (signal.SIGPIPE - 1)) | (1 << (signal.SIGINT - 1))), "HOME": "/h"}
    take_caller_state(environ)
    assert Child.caller_ignored == {signal.SIGPIPE, signal.SIGINT}
    assert environ == {"HOME": "/h"}


@pytest.mark.parametrize("value", [None, "", "not a number"])
def test_without_the_launcher_s_word_the_command_gets_the_defaults(value: str | None) -> None:
    environ = {} if value is None else {_env.OTEL_RUN_CALLER_SIGIGN: value}
    take_caller_state(environ)
    assert Child.caller_ignored == frozenset()
    assert environ == {}
