"""``otel-vm create --dry-run --format json``: the plan as a contract, and bad input on one line."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_run.vm import _cloudinit, _plan

REPO = Path(__file__).resolve().parents[2]
OTEL_VM = Path(sys.executable).with_name("otel-vm")


def _otel_vm(home: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """otel-vm as a new user runs it: a fresh HOME, no AZURE_* or OTEL_* variables."""
    environ = {"HOME": str(home), "PATH": os.environ.get("PATH", ""), **(env or {})}
    return subprocess.run([str(OTEL_VM), *argv], capture_output=True, text=True, env=environ, timeout=120, check=False)


def _by_kind(requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    kinds = {}
    for request in requests:
        kind = request["url"].split("?")[0].rsplit("/", 2)[-2]
        kinds[kind] = request
    return kinds


def test_the_dry_run_needs_nothing_and_prints_the_locked_down_plan(tmp_path: Path) -> None:
    done = _otel_vm(tmp_path, "create", "--dry-run", "--format", "json")
    assert done.returncode == 0, done.stderr
    requests = json.loads(done.stdout)
    assert all(set(r) == {"method", "url", "body"} and r["method"] == "PUT" for r in requests)
    assert all(r["url"].startswith("https://management.azure.com/subscriptions/") for r in requests)
    kinds = _by_kind(requests)
    assert list(kinds) == [
        "resourceGroups",
        "virtualNetworks",
        "networkSecurityGroups",
        "publicIPAddresses",
        "networkInterfaces",
        "virtualMachines",
        "schedules",
    ]
    vm = kinds["virtualMachines"]["body"]["properties"]
    assert vm["hardwareProfile"]["vmSize"] == "Standard_D2s_v5"
    assert vm["osProfile"]["linuxConfiguration"]["disablePasswordAuthentication"] is True
    assert "adminPassword" not in vm["osProfile"]
    [rule] = kinds["networkSecurityGroups"]["body"]["properties"]["securityRules"]
    inbound = rule["properties"]
    assert (inbound["direction"], inbound["access"], inbound["protocol"]) == ("Inbound", "Allow", "Tcp")
    assert inbound["destinationPortRange"] == "22"
    assert inbound["sourceAddressPrefix"].endswith("/32") and "*" not in inbound["sourceAddressPrefix"]
    assert kinds["publicIPAddresses"]["body"]["sku"]["name"] == "Standard"
    assert kinds["publicIPAddresses"]["body"]["properties"]["publicIPAllocationMethod"] == "Static"
    schedule = kinds["schedules"]["body"]["properties"]
    assert schedule["taskType"] == "ComputeVmShutdownTask" and schedule["status"] == "Enabled"
    assert schedule["targetResourceId"] == kinds["virtualMachines"]["url"].split("?")[0].removeprefix(
        "https://management.azure.com"
    )
    for request in requests:
        assert set(request["body"]["tags"]) >= {_plan.TAG_OWNER, _plan.TAG_EXPIRES}, request["url"]
    # nothing but SSH reaches the VM: no rule, NIC or IP setting publishes Grafana or the collector
    text = json.dumps(requests)
    for port in ("3000", "4317", "4318", "3200", "9090"):
        assert f'"{port}"' not in text
    assert "placeholders" in done.stderr  # says the subscription, address and key are stand-ins
    cloud = base64.b64decode(kinds["virtualMachines"]["body"]["properties"]["osProfile"]["customData"]).decode()
    assert 'if [ "bundle" = bundle ]' in cloud  # no --repo: the checkout goes over SSH as a git bundle
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    assert f"checkout -q {head.stdout.strip()}" in cloud


def test_the_dry_run_uses_the_given_settings_and_holds_no_secret(tmp_path: Path) -> None:
    key = tmp_path / "k.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGivenKey me@laptop\n")
    sub = "11111111-2222-3333-4444-555555555555"
    done = _otel_vm(
        tmp_path,
        "--subscription",
        sub,
        "create",
        "--dry-run",
        "--format",
        "json",
        "--allow-from",
        "198.51.100.7",
        "--ssh-key",
        str(key),
        "--region",
        "eastus",
        "--commit",
        "0123abc",
        "--repo",
        "https://example.org/otel-run.git",
    )
    assert done.returncode == 0, done.stderr
    kinds = _by_kind(json.loads(done.stdout))
    assert all(r["url"].startswith(f"https://management.azure.com/subscriptions/{sub}/") for r in kinds.values())
    assert all(r["body"]["location"] == "eastus" for r in kinds.values())
    [rule] = kinds["networkSecurityGroups"]["body"]["properties"]["securityRules"]
    assert rule["properties"]["sourceAddressPrefix"] == "198.51.100.7/32"
    os_profile = kinds["virtualMachines"]["body"]["properties"]["osProfile"]
    [public_key] = os_profile["linuxConfiguration"]["ssh"]["publicKeys"]
    assert public_key["keyData"] == "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGivenKey me@laptop"
    cloud = base64.b64decode(os_profile["customData"]).decode()
    assert cloud.startswith("#cloud-config\n")
    assert "git clone -q https://example.org/otel-run.git /opt/otel-run" in cloud and "checkout -q 0123abc" in cloud
    assert 'if [ "https://example.org/otel-run.git" = bundle ]' in cloud
    assert f"OTEL_RUN_COLLECTOR_TOKEN={'generated-at-create'}" in cloud  # the dry run generates no secret
    assert "placeholders" not in done.stderr
    assert not (tmp_path / ".config").exists()  # and stores nothing


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--subscription", "not-a-guid"], "--subscription: 'not-a-guid' is not a subscription id (a GUID)"),
        (["--ssh-key", "/nonexistent/key.pub"], "--ssh-key /nonexistent/key.pub: no such file"),
        (["--allow-from", "0.0.0.0/0"], "--allow-from: '0.0.0.0/0' is a range: SSH opens to one address only"),
        (["--allow-from", "*"], "--allow-from: '*' is not an IP address"),
        (["--allow-from", "10.1.2.3"], "--allow-from: '10.1.2.3' is not a public address"),
        (["--region", "West Europe"], "--region: 'West Europe' is not a region name"),
        (["--shutdown", "2500"], "--shutdown: '2500' is not a time of day as HHmm (UTC)"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(tmp_path: Path, argv: list[str], message: str) -> None:
    done = _otel_vm(tmp_path, "create", "--dry-run", *argv)
    assert done.returncode == 1, done.stderr
    [line] = [x for x in done.stderr.splitlines() if not x.startswith("otel-vm: dry run")]
    assert line.startswith(f"otel-vm: error: {message}"), line
    assert done.stdout == ""


def test_create_without_a_key_or_a_subscription_makes_nothing_and_says_so(tmp_path: Path) -> None:
    no_sub = _otel_vm(tmp_path, "create", "--allow-from", "198.51.100.7")
    assert no_sub.returncode == 1
    assert no_sub.stderr == "otel-vm: error: no subscription: give --subscription ID or set AZURE_SUBSCRIPTION_ID\n"
    env = {"AZURE_SUBSCRIPTION_ID": "11111111-2222-3333-4444-555555555555"}
    no_key = _otel_vm(tmp_path, "create", "--allow-from", "198.51.100.7", env=env)
    assert no_key.returncode == 1
    assert no_key.stderr.startswith(f"otel-vm: error: no SSH key: {tmp_path}/.ssh/id_ed25519.pub does not exist")
    no_addr = _otel_vm(tmp_path, "create", env=env)
    assert no_addr.returncode == 1 and "--allow-from ADDR" in no_addr.stderr


def test_help_lists_the_commands(tmp_path: Path) -> None:
    done = _otel_vm(tmp_path, "--help")
    assert done.returncode == 0
    for command in ("create", "start", "stop", "destroy", "status", "ssh", "run", "fetch", "tunnel"):
        assert f"    {command} " in done.stdout or f"    {command}\n" in done.stdout, command


# ------------------------------------------------------------------ cloud-init

CLOUD_INIT = shutil.which("cloud-init")
needs_cloud_init = pytest.mark.skipif(CLOUD_INIT is None, reason="needs Debian's cloud-init (make tools)")


def _rendered(repo: str = "https://example.org/otel-run.git") -> str:
    return _cloudinit.render(
        repo=repo,
        commit="0123abc",
        user="bench",
        collector_token="tok3n-value",
        grafana_password="pa55-word",
    )


def _schema(path: Path) -> subprocess.CompletedProcess[str]:
    assert CLOUD_INIT is not None
    return subprocess.run(
        [CLOUD_INIT, "schema", "--config-file", str(path)], capture_output=True, text=True, timeout=120, check=False
    )


@needs_cloud_init
@pytest.mark.parametrize("repo", ["https://example.org/otel-run.git", "bundle"])
def test_the_rendered_cloud_init_passes_cloud_init_schema(tmp_path: Path, repo: str) -> None:
    good = tmp_path / "user-data.yaml"
    good.write_text(_rendered(repo))
    done = _schema(good)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("Valid cloud-config")
    # the check can fail: the same file with a key cloud-init does not know
    bad = tmp_path / "bad.yaml"
    bad.write_text(_rendered().replace("package_upgrade: false", "package_upgrade: maybe"))
    assert _schema(bad).returncode != 0


def test_the_cloud_init_does_what_the_vm_needs() -> None:
    text = _rendered()
    data = yaml.safe_load(text)
    assert "@@" not in text
    assert "hyperfine" in data["packages"]
    files = {f["path"]: f for f in data["write_files"]}
    secrets = files["/etc/otel-run/stack.env"]
    assert secrets["permissions"] == "0600" and "OTEL_RUN_COLLECTOR_TOKEN=tok3n-value" in secrets["content"]
    assert 'Unattended-Upgrade "0"' in files["/etc/apt/apt.conf.d/99otel-run-no-background-apt"]["content"]
    provision = files["/usr/local/sbin/otel-run-provision"]["content"]
    assert "docker-ce" in provision and "docker-compose-plugin" in provision
    assert "make setup" in provision and "checkout -q 0123abc" in provision
    assert "-f docker-compose.yml -f docker-compose.vm.yml up -d" in provision
    assert provision.rstrip().endswith("> /var/lib/otel-run/ready")
    assert "performance" in files["/usr/local/sbin/otel-run-governor"]["content"]
    assert (REPO / "infra" / "cloud-init.yaml").read_text() == _cloudinit.template()


def test_a_value_that_would_break_the_cloud_init_is_refused() -> None:
    with pytest.raises(_plan.PlanError, match="--repo: 'x; rm -rf /' holds characters"):
        _cloudinit.render(repo="x; rm -rf /", commit="c", user="bench", collector_token="t", grafana_password="p")
