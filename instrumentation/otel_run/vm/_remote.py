"""The VM over SSH: ``ssh``, ``run``, ``fetch``, ``tunnel``, and waiting for cloud-init's marker.

Everything goes through the OpenSSH client (``$OTEL_RUN_VM_SSH``, default ``ssh``) with the key
given at create and a known-hosts file of this VM's own (``accept-new``: the first connection
records the host key, a changed key is refused). Nothing but port 22 is open on the VM: Grafana
and the collector are forwarded from the VM's loopback to this machine's (``tunnel``).

``fetch`` streams the VM's store (``~/.local/share/otel-run``) and ``/opt/otel-run/results`` as tar
over SSH, extracts them with tarfile's ``data`` filter (no absolute paths, links out or devices),
and merges the finished runs into the local store: trace files it lacks, index records of runs it
does not have. A run still running on the VM is left for the next fetch.
"""

from __future__ import annotations

import io
import shlex
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from otel_run import _env
from otel_run._errors import OtelRunError
from otel_run.store import _layout
from otel_run.store._store import Store

REMOTE_STORE = ".local/share/otel-run"  # the default store of the VM's user, relative to its home
REMOTE_PROJECT = "/opt/otel-run"  # where cloud-init checked the project out
READY = "/var/lib/otel-run/ready"
FAILED = "/var/lib/otel-run/failed"
WANTS_BUNDLE = "/var/lib/otel-run/wants-bundle"  # cloud-init waits for the project
BUNDLE = "/var/lib/otel-run/project.bundle"
FORWARDS = (("Grafana", 13000, 3000), ("collector OTLP/gRPC", 14317, 4317), ("collector OTLP/HTTP", 14318, 4318))


class RemoteError(OtelRunError):
    """The VM could not be reached or a remote step failed; one line."""


class Ssh:
    """How to reach the VM: address, user, key, and this VM's known-hosts file."""

    def __init__(self, address: str, user: str, key: Path, known_hosts: Path, environ: Mapping[str, str]) -> None:
        if not address:
            raise RemoteError("the VM has no public address on record (`otel-vm status` refreshes it)")
        self.address = address
        self.user = user
        self.key = key
        self.known_hosts = known_hosts
        self.client = environ.get(_env.OTEL_RUN_VM_SSH) or "ssh"
        self.environ = dict(environ)  # ssh's own (SSH_AUTH_SOCK, …): the caller's

    def argv(self, *extra: str, remote: Sequence[str] = ()) -> list[str]:
        """The ssh command line: options, ``extra`` ssh flags, the host, the remote command."""
        options = [
            "-i",
            str(self.key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            f"UserKnownHostsFile={self.known_hosts}",
            "-o",
            "ConnectTimeout=15",
        ]
        return [self.client, *options, *extra, f"{self.user}@{self.address}", *remote]

    def run(self, command: Sequence[str], tty: bool = False) -> int:
        """Run ``command`` on the VM in the project's checkout, its venv first on PATH (otel-run,
        otel-trace, span-diff, codeflash); its exit status."""
        venv = f"PATH={REMOTE_PROJECT}/.venv/bin:$PATH"
        remote = ["cd", REMOTE_PROJECT, "&&", venv, shlex.join(command)] if command else []
        return self._ssh(*(["-t"] if tty else []), remote=remote, capture=False).returncode

    def tunnel(self) -> int:
        """Forward :data:`FORWARDS` from this machine's loopback to the VM's, until interrupted."""
        forwards: list[str] = []
        for _, local, remote in FORWARDS:
            forwards += ["-L", f"127.0.0.1:{local}:127.0.0.1:{remote}"]
        return self._ssh("-N", "-o", "ExitOnForwardFailure=yes", *forwards, capture=False).returncode

    def output(self, remote: Sequence[str], timeout: float = 120) -> bytes:
        """The standard output of ``remote`` on the VM; its failure is a :class:`RemoteError`."""
        return self._checked(f"ssh {self.user}@{self.address}", remote, timeout=timeout).stdout

    def send(self, data: bytes, path: str) -> None:
        """Write ``data`` to ``path`` on the VM, whole or not at all (a part file, then a rename)."""
        part = shlex.quote(path + ".part")
        remote = ["sh", "-c", shlex.quote(f"cat > {part} && mv {part} {shlex.quote(path)}")]
        self._checked(f"sending {path} to the VM", remote, data=data)

    def wait_ready(
        self,
        timeout_s: float,
        progress: Callable[[str], None],
        bundle: Callable[[], bytes] | None = None,
        interval_s: float = 10.0,
    ) -> str:
        """Wait for cloud-init's ready marker; returns the commit it holds.

        When cloud-init asks for the project (``wants-bundle``), ``bundle()`` makes it (a git
        bundle) and it is sent once over SSH.
        """
        started = time.monotonic()
        check = (
            f"cat {READY} 2>/dev/null || {{ test -f {FAILED} && cat {FAILED} && exit 3; }} || "
            f"{{ test -f {WANTS_BUNDLE} && ! test -f {BUNDLE} && exit 4; }} || exit 2"
        )
        last = ""
        while time.monotonic() - started < timeout_s:
            done = self._ssh("-o", "BatchMode=yes", remote=["sh", "-c", shlex.quote(check)])
            if done.returncode == 0:
                return done.stdout.decode(errors="replace").strip()
            if done.returncode == 3:
                raise RemoteError(f"cloud-init failed on the VM: {_last_line(done.stdout)} (see {FAILED})")
            if done.returncode == 4:
                if bundle is None:
                    raise RemoteError("the VM waits for the project: run `otel-vm create` in the checkout")
                data = bundle()
                progress(f"sending the project ({len(data) / 1e6:.1f} MB git bundle) …")
                self.send(data, BUNDLE)
                continue
            state = "provisioning" if done.returncode == 2 else "not reachable yet"
            if state != last:
                progress(f"waiting for the VM ({state}) …")
                last = state
            time.sleep(interval_s)
        raise RemoteError(f"the VM was not ready after {timeout_s / 60:.0f} minutes (`otel-vm ssh` to look)")

    def _checked(
        self, doing: str, remote: Sequence[str], data: bytes | None = None, timeout: float | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        done = self._ssh("-o", "BatchMode=yes", remote=remote, data=data, timeout=timeout)
        if done.returncode != 0:
            raise RemoteError(f"{doing}: exit {done.returncode}: {_last_line(done.stderr)}")
        return done

    def _ssh(
        self,
        *extra: str,
        remote: Sequence[str] = (),
        capture: bool = True,
        data: bytes | None = None,
        timeout: float | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run the ssh client: the one place its absence and its time-outs become a RemoteError."""
        try:
            return subprocess.run(
                self.argv(*extra, remote=remote),
                input=data,
                capture_output=capture,
                timeout=timeout,
                env=self.environ,
                check=False,
            )
        except FileNotFoundError:
            raise RemoteError(f"no ssh client {self.client!r} on PATH (install openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise RemoteError(f"ssh {self.user}@{self.address}: no answer in {timeout:.0f} s") from None


def fetch(ssh: Ssh, store: str, results: Path) -> tuple[int, int]:
    """Copy the VM's store into ``store`` and its results/ into ``results``.

    Returns:
        (runs added, runs left because they are still running on the VM).
    """
    with tempfile.TemporaryDirectory(prefix="otel-vm-fetch-") as tmp:
        staging = Path(tmp)
        archive = ssh.output(
            ["tar", "-C", REMOTE_STORE, "-cf", "-", "--ignore-failed-read", _layout.INDEX, _layout.TRACES],
            timeout=1800,
        )
        _extract(archive, staging / "store")
        added, running = Store(store).import_runs(Store(str(staging / "store")))
        archive = ssh.output(["tar", "-C", REMOTE_PROJECT, "-cf", "-", "results"], timeout=600)
        _extract(archive, staging / "project")
        if (staging / "project" / "results").is_dir():
            shutil.copytree(staging / "project" / "results", results, dirs_exist_ok=True)
    return added, running


def _last_line(output: bytes) -> str:
    lines = output.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no output"


def _extract(archive: bytes, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    if not archive:
        return
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(into, filter="data")
            else:  # Python before 3.10.12 / 3.11.4 (Debian 12's 3.11.2): the same rule, by hand
                tar.extractall(into, members=_plain_members(tar, into))
    except (tarfile.TarError, OSError) as exc:
        raise RemoteError(f"fetch: the VM sent an archive that cannot be unpacked: {exc}") from exc


def _plain_members(tar: tarfile.TarFile, into: Path) -> list[tarfile.TarInfo]:
    """Regular files and directories that land inside ``into``; anything else is refused."""
    root = into.resolve()
    members = tar.getmembers()
    for member in members:
        target = (root / member.name).resolve()
        if not (member.isfile() or member.isdir()) or (target != root and root not in target.parents):
            raise tarfile.TarError(f"{member.name!r}: not a plain file or directory inside the archive's root")
        member.mode &= 0o755 if member.isdir() else 0o644
    return members
