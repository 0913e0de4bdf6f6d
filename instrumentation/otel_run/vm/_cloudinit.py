"""``infra/cloud-init.yaml`` rendered for one VM: the project's version and commit, the secrets.

The template is ``otel_run/vm/cloud-init.yaml`` (``infra/cloud-init.yaml`` links to it, so the
wheel carries it); its ``@@NAME@@`` placeholders are filled here, and a placeholder left unfilled
or a value that would break the YAML is an error rather than a VM that fails at boot.
"""

from __future__ import annotations

import base64
import re
from importlib.resources import files

from otel_run import __version__
from otel_run.vm._plan import PlanError

_PLACEHOLDER = re.compile(r"@@([A-Z_]+)@@")
_SAFE = re.compile(r"[A-Za-z0-9_.:/@+=~-]+")  # what a value may hold: it lands in YAML and sh unquoted


def template() -> str:
    """The cloud-init template as shipped in the package."""
    return (files("otel_run.vm") / "cloud-init.yaml").read_text(encoding="utf-8")


def render(*, repo: str, commit: str, user: str, collector_token: str, grafana_password: str) -> str:
    """The cloud-config for one VM.

    Args:
        repo: the git URL the VM clones the project from.
        commit: the commit it checks out (``make setup`` runs there).
        user: the VM's admin user (owns the checkout, runs the benchmarks).
        collector_token: the bearer token the VM's collector requires.
        grafana_password: Grafana's admin password.
    """
    values = {
        "VERSION": __version__,
        "REPO": repo,
        "COMMIT": commit,
        "USER": user,
        "COLLECTOR_TOKEN": collector_token,
        "GRAFANA_PASSWORD": grafana_password,
    }
    for name, value in values.items():
        if not _SAFE.fullmatch(value):
            flag = {"REPO": "--repo", "COMMIT": "--commit", "USER": "--user"}.get(name, name.lower())
            raise PlanError(f"{flag}: {value!r} holds characters cloud-init would not survive")

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise PlanError(f"cloud-init template: unknown placeholder @@{name}@@")
        return values[name]

    return _PLACEHOLDER.sub(fill, template())


def custom_data(cloud_config: str) -> str:
    """``osProfile.customData``: the cloud-config, base64 (Azure passes it to cloud-init as is)."""
    return base64.b64encode(cloud_config.encode()).decode("ascii")
