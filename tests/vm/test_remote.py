"""otel-vm's SSH commands (run, fetch, tunnel, the wait for cloud-init) against a stand-in VM.

The stand-in is an ``ssh`` client (``$OTEL_RUN_VM_SSH``) that stands in for OpenSSH and the VM
at once: it records its arguments, then runs the remote command the way sshd does (``sh -c`` of
the arguments joined by spaces) in a directory that plays the VM's filesystem (its ``/opt/otel-run``,
``/var/lib/otel-run`` and the user's home). The remote commands themselves (tar, cat, the
benchmark) are real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otel_run.vm import _cli

ADDRESS = "203.0.113.10"
OTEL_RUN = Path(sys.executable).with_name("otel-run")
OTEL_TRACE = Path(sys.executable).with_name("otel-trace")

FAKE_SSH = textwrap.dedent(
    """\
    #!{python}
    import json, os, subprocess, sys
    root = os.environ["FAKE_VM_ROOT"]
    args = sys.argv[1:]
    with open(os.path.join(root, "ssh-argv.jsonl"), "a") as f:
        f.write(json.dumps(args) + "\\n")
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-i", "-o", "-L") else 1
    host, remote = args[i], args[i + 1:]
    if not remote:
        sys.exit(0)  # a session or a tunnel: nothing to run here
    command = " ".join(remote)
    for path in ("/opt/otel-run", "/var/lib/otel-run"):
        command = command.replace(path, root + path)
    home = os.path.join(root, "home")
    sys.exit(subprocess.run(["sh", "-c", command], cwd=home, env={{**os.environ, "HOME": home}}).returncode)
    """
)


@pytest.fixture
def vm(tmp_path: Path) -> dict[str, str]:
    """A stand-in VM and a local user who created it (vm.json with its address, a key)."""
    root = tmp_path / "vm"
    for d in ("home/.local/share", "opt/otel-run/results", "var/lib/otel-run"):
        (root / d).mkdir(parents=True)
    ssh = tmp_path / "fake-ssh"
    ssh.write_text(FAKE_SSH.format(python=sys.executable))
    ssh.chmod(0o755)
    home = tmp_path / "me"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519.pub").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey me@laptop\n")
    state = home / ".config" / "otel-run" / "vm" / "otel-run-bench"
    state.mkdir(parents=True)
    (state / "vm.json").write_text(json.dumps({"address": ADDRESS}))
    (state / "collector-token").write_text("tok3n\n")
    return {
        "HOME": str(home),
        "PATH": os.environ.get("PATH", ""),
        "OTEL_RUN_VM_SSH": str(ssh),
        "FAKE_VM_ROOT": str(root),
        "XDG_DATA_HOME": str(home / "data"),
    }


def _argv(env: dict[str, str]) -> list[list[str]]:
    path = Path(env["FAKE_VM_ROOT"]) / "ssh-argv.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_runs_in_the_checkout_and_returns_the_remote_exit_status(
    vm: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    code = _cli.main(["run", "--", "sh", "-c", "pwd; echo $PATH; echo to-stderr >&2; exit 7"], environ=vm)
    out, err = capfd.readouterr()
    assert code == 7
    cwd, path = out.strip().splitlines()
    assert cwd == f"{vm['FAKE_VM_ROOT']}/opt/otel-run" and "to-stderr" in err
    assert path.startswith(f"{vm['FAKE_VM_ROOT']}/opt/otel-run/.venv/bin:")  # the project's tools first
    [argv] = _argv(vm)
    home = vm["HOME"]
    assert argv[:2] == ["-i", f"{home}/.ssh/id_ed25519"]
    assert "StrictHostKeyChecking=accept-new" in argv
    assert f"UserKnownHostsFile={home}/.config/otel-run/vm/otel-run-bench/known_hosts" in argv
    assert f"bench@{ADDRESS}" in argv


def test_run_without_a_command_is_a_usage_error(vm: dict[str, str], capfd: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["run"], environ=vm) == 2
    assert "give the command after --" in capfd.readouterr().err


def test_fetch_merges_the_vms_finished_runs_into_the_local_store(
    vm: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    remote_store = Path(vm["FAKE_VM_ROOT"]) / "home" / ".local" / "share" / "otel-run"
    env = {"PATH": vm["PATH"], "HOME": vm["HOME"], "OTEL_RUN_STORE": str(remote_store)}
    for label in ("on-vm-1", "on-vm-2"):
        subprocess.run([str(OTEL_RUN), "-q", "-l", label, "--", "true"], env=env, check=True, timeout=120)
    # a run still going on the VM: its start record only
    index = remote_store / "index.jsonl"
    first = json.loads(index.read_text().splitlines()[0])
    index.write_text(index.read_text() + json.dumps({**first, "run_id": "00000000000000aa", "label": "running"}) + "\n")
    (Path(vm["FAKE_VM_ROOT"]) / "opt" / "otel-run" / "results" / "bench.md").write_text("# from the VM\n")

    assert _cli.main(["fetch"], environ=vm) == 0
    err = capfd.readouterr().err
    local = Path(vm["XDG_DATA_HOME"]) / "otel-run"
    assert f"2 runs added to {local}" in err and "1 still running on the VM" in err
    listed = subprocess.run(
        [str(OTEL_TRACE), "--store", str(local), "list", "--format", "json", "-n", "0"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert sorted(r["label"] for r in json.loads(listed.stdout)) == ["on-vm-1", "on-vm-2"]
    results = Path(vm["HOME"]) / ".config" / "otel-run" / "vm" / "otel-run-bench" / "results" / "bench.md"
    assert results.read_text() == "# from the VM\n"

    assert _cli.main(["fetch"], environ=vm) == 0  # again: nothing new
    assert "0 runs added" in capfd.readouterr().err


def test_tunnel_forwards_loopback_to_loopback_only(vm: dict[str, str], capfd: pytest.CaptureFixture[str]) -> None:
    assert _cli.main(["tunnel"], environ=vm) == 0
    err = capfd.readouterr().err
    [argv] = _argv(vm)
    forwards = [argv[i + 1] for i, a in enumerate(argv) if a == "-L"]
    assert forwards == [
        "127.0.0.1:13000:127.0.0.1:3000",
        "127.0.0.1:14317:127.0.0.1:4317",
        "127.0.0.1:14318:127.0.0.1:4318",
    ]
    assert "-N" in argv and "ExitOnForwardFailure=yes" in argv
    assert "tok3n" not in err  # the token stays in its 0600 file; the line says where
    assert "/.config/otel-run/vm/otel-run-bench/collector-token)" in err


def test_waiting_for_cloud_init_reads_the_ready_marker_or_the_failure(vm: dict[str, str]) -> None:
    from otel_run.vm._remote import RemoteError, Ssh

    state = Path(vm["HOME"]) / ".config" / "otel-run" / "vm" / "otel-run-bench"
    ssh = Ssh(ADDRESS, "bench", Path(vm["HOME"]) / ".ssh" / "id_ed25519", state / "known_hosts", vm)
    marker = Path(vm["FAKE_VM_ROOT"]) / "var" / "lib" / "otel-run"
    (marker / "failed").write_text("E: Unable to locate package docker-ce\n")
    with pytest.raises(RemoteError, match="cloud-init failed on the VM: E: Unable to locate package docker-ce"):
        ssh.wait_ready(60, lambda line: None)
    (marker / "failed").unlink()
    (marker / "ready").write_text("0123abc\n")
    assert ssh.wait_ready(60, lambda line: None) == "0123abc"


@pytest.mark.parametrize("builtin_filter", [True, False], ids=["tarfile-data-filter", "before-3.11.4"])
def test_fetch_refuses_an_archive_that_escapes_or_links(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, builtin_filter: bool
) -> None:
    import io
    import tarfile

    from otel_run.vm._remote import RemoteError, _extract

    if not builtin_filter:
        monkeypatch.delattr(tarfile, "data_filter", raising=False)

    def archive(*members: tuple[str, bytes | None, str | None]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for name, data, link in members:
                info = tarfile.TarInfo(name)
                if link is not None:
                    info.type, info.linkname = tarfile.SYMTYPE, link
                    tar.addfile(info)
                else:
                    info.size = len(data or b"")
                    tar.addfile(info, io.BytesIO(data or b""))
        return buffer.getvalue()

    _extract(archive(("traces/a.jsonl", b"{}\n", None), ("index.jsonl", b"", None)), tmp_path / "ok")
    assert (tmp_path / "ok" / "traces" / "a.jsonl").read_bytes() == b"{}\n"
    with pytest.raises(RemoteError, match="cannot be unpacked"):
        _extract(archive(("../escaped", b"x", None)), tmp_path / "bad1")
    assert not (tmp_path / "escaped").exists()
    with pytest.raises(RemoteError, match="cannot be unpacked"):
        _extract(archive(("traces/link", None, "/etc/passwd")), tmp_path / "bad2")


def test_the_project_goes_to_the_vm_as_a_git_bundle_when_cloud_init_asks(vm: dict[str, str], tmp_path: Path) -> None:
    from otel_run.vm._cli import _bundle
    from otel_run.vm._remote import Ssh

    repo = tmp_path / "checkout"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "Makefile").write_text("setup:\n\ttrue\n")
    subprocess.run([*git, "add", "Makefile"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    commit = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()

    marker = Path(vm["FAKE_VM_ROOT"]) / "var" / "lib" / "otel-run"
    (marker / "wants-bundle").touch()  # cloud-init reached the point where it needs the project
    said: list[str] = []

    def progress(line: str) -> None:  # and plays cloud-init's next steps once the bundle is there
        said.append(line)
        if line.startswith("waiting for the VM (provisioning)"):
            clone = tmp_path / "opt-otel-run"
            subprocess.run(["git", "clone", "-q", str(marker / "project.bundle"), str(clone)], check=True)
            head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True)
            (marker / "ready").write_text(head.stdout)

    state = Path(vm["HOME"]) / ".config" / "otel-run" / "vm" / "otel-run-bench"
    ssh = Ssh(ADDRESS, "bench", Path(vm["HOME"]) / ".ssh" / "id_ed25519", state / "known_hosts", vm)
    ready = ssh.wait_ready(60, progress, lambda: _bundle(repo, commit), interval_s=0)
    assert ready == commit
    assert said[0].startswith("sending the project (") and said[0].endswith(" MB git bundle) …")
    assert not (marker / "project.bundle.part").exists()
    sends = [argv for argv in _argv(vm) if "cat > " in " ".join(argv)]
    assert len(sends) == 1  # sent once, not at every poll


def test_create_waits_for_cloud_init_and_says_when_the_vm_holds_another_commit(
    vm: dict[str, str], capfd: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("azure.mgmt.compute")
    from tests.vm.arm_standin import SUBSCRIPTION, ArmStandIn

    (Path(vm["FAKE_VM_ROOT"]) / "var" / "lib" / "otel-run" / "ready").write_text("0000aaaa0000\n")
    with ArmStandIn() as arm:
        argv = ["create", "--allow-from", "198.51.100.7", "--repo", "https://example.org/x.git", "--commit", "abc123"]
        code = _cli.main(argv, environ={**vm, "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION}, connect=arm.connect)
    err = capfd.readouterr().err
    assert code == 0, err
    assert f"created: otel-bench at {ADDRESS}" in err
    assert "ready: otel-run at 0000aaaa0000" in err
    assert "provisioned at 0000aaaa0000, not abc123" in err
