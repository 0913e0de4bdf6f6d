"""otel-vm against a loopback stand-in of ARM, through the real azure-mgmt clients and pipeline.

No Azure credentials: the clients get a static bearer-token policy (the only part of the real
pipeline that cannot talk to a loopback http:// URL) and the stand-in's base URL. The one test
with real credentials is skipped without ``AZURE_SUBSCRIPTION_ID``.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("azure.mgmt.compute")

from otel_run.vm import _cli, _plan
from otel_run.vm._azure import Clients, connect
from tests.vm.arm_standin import PUBLIC_ADDRESS, SUBSCRIPTION, ArmStandIn

ORDER = [
    "resourcegroups",
    "virtualnetworks",
    "networksecuritygroups",
    "publicipaddresses",
    "networkinterfaces",
    "virtualmachines",
    "schedules",
]


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def arm() -> Iterator[ArmStandIn]:
    with ArmStandIn() as server:
        yield server


@pytest.fixture
def home(tmp_path: Path) -> Path:
    ssh = tmp_path / "home" / ".ssh"
    ssh.mkdir(parents=True)
    (ssh / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIStandInKey test@host\n")
    (ssh / "id_ed25519").write_text("not used: ssh is not run in these tests\n")
    return tmp_path / "home"


def _run(arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    environ = {"HOME": str(home), "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION, "PATH": os.environ.get("PATH", "")}
    common = ["--allow-from", "198.51.100.7", "--repo", "https://example.org/otel-run.git", "--commit", "abc123"]
    args = list(argv)
    if args[0] == "create":  # the test's own flags come last: they win
        args = [args[0], *common, "--no-wait", *args[1:]]
    code = _cli.main(args, environ=environ, connect=arm.connect)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def _kinds(arm: ArmStandIn) -> list[str]:
    return [r.path.lower().rsplit("/", 2)[-2] for r in arm.puts()]


def test_create_makes_every_resource_in_order_with_the_api_versions_of_the_plan(
    arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = _run(arm, home, capsys, "create")
    assert done.code == 0, done.err
    assert _kinds(arm) == ORDER
    versions = {r.path.lower().rsplit("/", 2)[-2]: r.api_version for r in arm.puts()}
    assert versions == {
        "resourcegroups": _plan.API_GROUP,
        "virtualnetworks": _plan.API_NETWORK,
        "networksecuritygroups": _plan.API_NETWORK,
        "publicipaddresses": _plan.API_NETWORK,
        "networkinterfaces": _plan.API_NETWORK,
        "virtualmachines": _plan.API_COMPUTE,
        "schedules": _plan.API_SCHEDULE,
    }
    # the long-running operations were followed to the end: every resource Succeeded
    for path, resource in arm.state.resources.items():
        assert resource["properties"]["provisioningState"] == "Succeeded", path
        assert resource["tags"][_plan.TAG_OWNER] and resource["tags"][_plan.TAG_EXPIRES], path
    state = home / ".config" / "otel-run" / "vm" / _plan.DEFAULT_GROUP
    assert json.loads((state / "vm.json").read_text())["address"] == PUBLIC_ADDRESS
    for secret in ("collector-token", "grafana-password"):
        assert stat.S_IMODE((state / secret).stat().st_mode) == 0o600
        assert len((state / secret).read_text().strip()) >= 32
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert f"created: {_plan.DEFAULT_NAME} at {PUBLIC_ADDRESS}" in done.err


def test_a_second_create_changes_nothing(arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(arm, home, capsys, "create").code == 0
    token = (home / ".config" / "otel-run" / "vm" / _plan.DEFAULT_GROUP / "collector-token").read_text()
    before = len(arm.puts())
    again = _run(arm, home, capsys, "create")
    assert again.code == 0, again.err
    assert len(arm.puts()) == before
    assert "nothing to change" in again.err
    assert (home / ".config" / "otel-run" / "vm" / _plan.DEFAULT_GROUP / "collector-token").read_text() == token


def test_a_new_allow_from_updates_only_the_security_group(
    arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(arm, home, capsys, "create").code == 0
    before = len(arm.puts())
    assert _run(arm, home, capsys, "create", "--allow-from", "198.51.100.99").code == 0
    [nsg] = arm.puts()[before:]
    [rule] = nsg.body["properties"]["securityRules"]
    assert "/networkSecurityGroups/" in nsg.path and rule["properties"]["sourceAddressPrefix"] == "198.51.100.99/32"


def test_a_failure_half_way_says_what_exists_and_the_rerun_completes_it(
    arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arm.state.fail[_plan.DEFAULT_NAME] = ("AllocationFailed", "Allocation failed. Please try another size.")
    failed = _run(arm, home, capsys, "create")
    assert failed.code == 1
    [line] = failed.err.strip().splitlines()[-1:]
    assert line.startswith("otel-vm: error: create stopped at the virtual machine otel-bench: ")
    assert "(AllocationFailed) Allocation failed" in line
    assert "the group holds: resource group otel-run-bench, virtual network otel-bench-vnet" in line
    assert "`otel-vm create` again completes it" in line
    assert "Traceback" not in failed.err
    assert arm.resource("virtualMachines", "otel-bench")["properties"]["provisioningState"] == "Failed"  # type: ignore[index]
    assert arm.resource("schedules", "shutdown-computevm-otel-bench") is None
    before = len(arm.puts())
    rerun = _run(arm, home, capsys, "create")
    assert rerun.code == 0, rerun.err
    assert [r.path.lower().rsplit("/", 2)[-2] for r in arm.puts()[before:]] == ["virtualmachines", "schedules"]
    assert "virtual machine otel-bench: completing (left Failed)" in rerun.err


def test_throttling_is_retried_after_retry_after(
    arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arm.state.throttle = 2
    arm.state.retry_after = "1"
    done = _run(arm, home, capsys, "create")
    assert done.code == 0, done.err
    assert arm.state.throttle == 0
    assert _kinds(arm) == ORDER
    # the first request, the GET of the group, was answered 429 twice: the SDK sent it three times
    group = f"/subscriptions/{SUBSCRIPTION}/resourcegroups/{_plan.DEFAULT_GROUP}"
    assert [(r.method, r.path.lower()) for r in arm.state.requests[:4]] == [("GET", group)] * 3 + [("PUT", group)]


def test_stop_deallocates_and_start_runs_again(arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(arm, home, capsys, "create").code == 0

    def power() -> str:
        done = _run(arm, home, capsys, "status", "--format", "json")
        assert done.code == 0, done.err
        return str(json.loads(done.out)["power"])

    assert power() == "running"
    assert _run(arm, home, capsys, "stop").code == 0
    assert power() == "deallocated"
    posts = [r.path for r in arm.state.requests if r.method == "POST"]
    assert posts[-1].endswith("/virtualMachines/otel-bench/deallocate")
    assert _run(arm, home, capsys, "start").code == 0
    assert power() == "running"


def test_destroy_asks_then_deletes_the_whole_group(
    arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _run(arm, home, capsys, "create").code == 0
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    refused = _run(arm, home, capsys, "destroy")
    assert refused.code == 2 and "confirm with --yes" in refused.err
    assert arm.state.groups
    done = _run(arm, home, capsys, "destroy", "--yes")
    assert done.code == 0, done.err
    assert not arm.state.groups and not arm.state.resources
    state = home / ".config" / "otel-run" / "vm" / _plan.DEFAULT_GROUP
    assert not [p.name for p in state.iterdir() if p.name in ("vm.json", "collector-token", "grafana-password")]
    status = _run(arm, home, capsys, "status", "--format", "json")
    assert json.loads(status.out) == {"group": _plan.DEFAULT_GROUP, "exists": False}
    assert "nothing to destroy" in _run(arm, home, capsys, "destroy", "--yes").err


def test_a_group_being_deleted_is_a_conflict_on_one_line(
    arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(arm, home, capsys, "create").code == 0
    arm.state.deleting[_plan.DEFAULT_GROUP] = 5
    arm.state.resources.clear()
    done = _run(arm, home, capsys, "create")
    assert done.code == 1
    [line] = done.err.strip().splitlines()[-1:]
    assert "409 (ResourceGroupBeingDeleted)" in line and "Traceback" not in done.err


def test_an_unknown_region_is_one_line_and_nothing_is_made(
    arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    done = _run(arm, home, capsys, "create", "--region", "marsnorth")
    assert done.code == 1
    [line] = done.err.strip().splitlines()[-1:]
    assert "400 (LocationNotAvailableForResourceGroup) The provided location 'marsnorth'" in line
    assert "the group holds: nothing" in line
    assert not arm.puts()[1:] and not arm.state.groups


def test_an_unknown_subscription_is_one_line(arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = _run(arm, home, capsys, "status", "--subscription", "99999999-2222-3333-4444-555555555555")
    assert done.code == 1
    assert done.err.strip() == (
        "otel-vm: error: reading the resource group: 404 (SubscriptionNotFound) "
        "The subscription '99999999-2222-3333-4444-555555555555' could not be found."
    )


def test_missing_credentials_are_one_line(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from azure.identity import ChainedTokenCredential, EnvironmentCredential

    # what DefaultAzureCredential raises when none of its credentials has anything: the chain's error
    chain = ChainedTokenCredential(EnvironmentCredential())

    def clients(subscription: str) -> Clients:
        return connect(subscription, credential=chain, base_url="https://127.0.0.1:9", retry_total=0)

    environ = {"HOME": str(home), "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION}
    code = _cli.main(["status"], environ=environ, connect=clients)
    err = capsys.readouterr().err
    assert code == 1
    [line] = err.strip().splitlines()
    assert line.startswith("otel-vm: error: no Azure credentials: ChainedTokenCredential failed to retrieve a token")
    assert "az login" in line


@pytest.mark.skipif(not os.environ.get("AZURE_SUBSCRIPTION_ID"), reason="needs AZURE_SUBSCRIPTION_ID and credentials")
def test_status_against_real_azure(home: Path, capsys: pytest.CaptureFixture[str]) -> None:  # pragma: no cover
    code = _cli.main(["status", "--format", "json", "--group", "otel-run-bench-probe"], environ=dict(os.environ))
    out = capsys.readouterr().out
    assert code == 0 and json.loads(out)["group"] == "otel-run-bench-probe"


def test_only_create_needs_the_ssh_key(arm: ArmStandIn, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(arm, home, capsys, "create").code == 0
    for key in (home / ".ssh").iterdir():
        key.unlink()
    status = _run(arm, home, capsys, "status", "--format", "json")
    assert status.code == 0, status.err
    assert json.loads(status.out)["power"] == "running"
    assert _run(arm, home, capsys, "stop").code == 0
