from __future__ import annotations

from otel_run.run._ci import ci_attributes
from tests.conftest import PYTHON, Runner

GITHUB = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_WORKFLOW": "docflash",
    "GITHUB_RUN_ID": "123456",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_JOB": "optimize",
    "GITHUB_REPOSITORY": "codeflash-ai/docflash",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REF_NAME": "main",
    "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567",
}


def test_github_actions_job_becomes_the_runs_parent_with_cicd_attributes(runner: Runner) -> None:
    job_trace, job_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    env = runner.env(**GITHUB, TRACEPARENT=f"00-{job_trace}-{job_span}-01")
    result = runner.run(PYTHON, "-c", "pass", env=env)
    assert result.returncode == 0
    run, trace = runner.last()
    root = trace.by_id[run.root_span_id]
    assert run.trace_id == job_trace and root.parent_id == job_span
    attrs = root.attributes
    assert attrs["cicd.pipeline.name"] == "docflash" and attrs["cicd.pipeline.task.name"] == "optimize"
    assert attrs["cicd.pipeline.run.id"] == "123456"
    assert (
        attrs["cicd.pipeline.run.url.full"] == "https://github.com/codeflash-ai/docflash/actions/runs/123456/attempts/2"
    )
    assert attrs["vcs.ref.head.name"] == "main"  # the revision is the checkout's own HEAD when there is one


def test_github_sha_is_the_revision_without_a_checkout() -> None:
    assert ci_attributes(GITHUB)["vcs.ref.head.revision"] == GITHUB["GITHUB_SHA"]


def test_outside_ci_nothing_is_added() -> None:
    assert ci_attributes({}) == {}
    assert ci_attributes({"GITHUB_ACTIONS": "false", "GITHUB_JOB": "x"}) == {}
