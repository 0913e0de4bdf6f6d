"""The CI job as the trace's parent: CI/CD semantic-convention attributes.

When otel-run runs inside a CI job, its environment says which pipeline, run
and job this is. On GitHub Actions the root span gets ``cicd.pipeline.name``,
``cicd.pipeline.run.id``, ``cicd.pipeline.run.url.full``,
``cicd.pipeline.task.name`` and the ``vcs.*`` attributes of the commit. If the
job also exports ``TRACEPARENT`` (a workflow-level tracing action), the run is
already a child of the job's span: otel-run honours it as it always does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from otel_run import _env


def ci_attributes(environ: Mapping[str, str]) -> dict[str, Any]:
    """The CI/CD attributes this environment gives (empty outside CI)."""
    if environ.get(_env.GITHUB_ACTIONS) != "true":
        return {}
    attrs: dict[str, Any] = {"cicd.pipeline.runner.name": "GitHub Actions"}
    workflow = environ.get(_env.GITHUB_WORKFLOW)
    run_id = environ.get(_env.GITHUB_RUN_ID)
    server = environ.get(_env.GITHUB_SERVER_URL, "https://github.com").rstrip("/")
    repo = environ.get(_env.GITHUB_REPOSITORY)
    if workflow:
        attrs["cicd.pipeline.name"] = workflow
    if run_id:
        attrs["cicd.pipeline.run.id"] = run_id
        if repo:
            url = f"{server}/{repo}/actions/runs/{run_id}"
            attempt = environ.get(_env.GITHUB_RUN_ATTEMPT)
            attrs["cicd.pipeline.run.url.full"] = f"{url}/attempts/{attempt}" if attempt else url
    if environ.get(_env.GITHUB_JOB):
        attrs["cicd.pipeline.task.name"] = environ[_env.GITHUB_JOB]
    if repo:
        attrs["vcs.repository.url.full"] = f"{server}/{repo}"
    if environ.get(_env.GITHUB_REF_NAME):
        attrs["vcs.ref.head.name"] = environ[_env.GITHUB_REF_NAME]
    if environ.get(_env.GITHUB_SHA):
        attrs["vcs.ref.head.revision"] = environ[_env.GITHUB_SHA]
    return attrs
