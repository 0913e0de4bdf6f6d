"""``otel-vm``: the benchmark VM on Azure, from create to destroy.

    otel-vm create [--dry-run [--format json]] [--allow-from ADDR | --detect-address] [--no-wait]
    otel-vm status | start | stop | destroy [--yes]
    otel-vm ssh [-- ARGS…] | run -- CMD… | fetch | tunnel

Global options (before or after the command): ``--subscription ID`` (else
``$AZURE_SUBSCRIPTION_ID``), ``--allow-from ADDR``, ``--region``, ``--size``, ``--ssh-key FILE``
(the public key; its private half is the same path without ``.pub``), ``--group``, ``--name``.

``create`` makes the resource group and everything in it (:mod:`._plan`), tags each resource
``otel-run:owner`` / ``otel-run:expires``, generates the collector's bearer token and Grafana's
password and keeps them in this machine's state directory (0600), and waits for cloud-init's ready
marker. ``--dry-run`` prints the ARM requests instead, needing no credentials.

State: ``$XDG_CONFIG_HOME/otel-run/vm/GROUP/`` (default ``~/.config/…``): ``vm.json``, the
secrets, this VM's known-hosts file and fetched results. Exit status: 0; 1 for a failure (one
line naming it); 2 for bad usage; the remote command's status for ``run`` and ``ssh``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import getpass
import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from otel_run import __version__, _env, _wire
from otel_run._errors import OtelRunError, UsageError
from otel_run.vm import _plan
from otel_run.vm._plan import PlanError, Settings

TYPE_CHECKING = False
if TYPE_CHECKING:
    from otel_run.vm._azure import Azure, Clients
    from otel_run.vm._remote import Ssh

Connect = Callable[[str], "Clients"]
"""Makes the SDK clients of a subscription (the tests hand in clients of a loopback stand-in)."""

PLACEHOLDER_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
PLACEHOLDER_ADDRESS = "203.0.113.1"  # TEST-NET-3 (RFC 5737): stands for the caller's address in a dry run
PLACEHOLDER_KEY = "ssh-ed25519 AAAA-the-public-key-of-ssh-key otel-vm-dry-run"
PLACEHOLDER_SECRET = "generated-at-create"
BUNDLE_REPO = "bundle"  # cloud-init's word for "otel-vm sends the project over SSH"
DETECT_URL = "https://api.ipify.org"
READY_TIMEOUT_S = 30 * 60
DEFAULT_KEYS = ("id_ed25519.pub", "id_rsa.pub")  # in ~/.ssh, tried in this order
COMMANDS = ("create", "status", "start", "stop", "destroy", "ssh", "run", "fetch", "tunnel")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="otel-vm", description="The benchmark VM on Azure: create, run benchmarks, fetch, destroy.")
    p.add_argument("--version", action="version", version=f"otel-vm {__version__}")
    _globals(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    helps = {
        "create": "create the VM (idempotent: completes a half-made group, changes nothing the second time)",
        "status": "power state, address, size, expiry",
        "start": "start a deallocated VM",
        "stop": "deallocate the VM (no compute bill; disk and IP remain)",
        "destroy": "delete the whole resource group (asks unless --yes)",
        "ssh": "an SSH session on the VM (arguments after -- go to ssh's remote command)",
        "run": "run a command on the VM in the project's checkout: otel-vm run -- make bench",
        "fetch": "copy the VM's store and results/ here: its runs appear in otel-trace list and span-diff",
        "tunnel": "forward Grafana and the collector to this machine's loopback over SSH",
    }
    parsers = {name: sub.add_parser(name, help=text, description=text) for name, text in helps.items()}
    for sp in parsers.values():
        _globals(sp, top=False)
    c = parsers["create"]
    c.add_argument("--dry-run", action="store_true", help="print the ARM requests, make nothing (no credentials)")
    c.add_argument("--format", choices=("text", "json"), default="text", help="dry run output (default: text)")
    c.add_argument(
        "--repo", help="a git URL the VM clones the project from (default: this checkout, sent as a git bundle)"
    )
    c.add_argument("--commit", help="commit the VM checks out (default: this checkout's HEAD)")
    c.add_argument("--shutdown", default=_plan.DEFAULT_SHUTDOWN, metavar="HHMM", help="nightly auto-shutdown, UTC")
    c.add_argument("--days", type=int, default=_plan.DEFAULT_DAYS, help="otel-run:expires tag: days from now (7)")
    c.add_argument("--no-wait", action="store_true", help="do not wait for cloud-init's ready marker")
    parsers["status"].add_argument("--format", choices=("text", "json"), default="text")
    parsers["destroy"].add_argument("--yes", action="store_true", help="do not ask")
    parsers["ssh"].add_argument("args", nargs=argparse.REMAINDER, help="-- then a remote command")
    parsers["run"].add_argument("args", nargs=argparse.REMAINDER, help="-- then the command")
    parsers["fetch"].add_argument("--store", help="the local store to merge into (default: otel-run's)")
    return p


def _globals(p: argparse.ArgumentParser, top: bool) -> None:
    """The options every command takes, before or after it (after wins): the defaults live on
    the top parser, a command's parser sets only what is given after the command."""

    def opt(*names: str, value: Any = None, **kwargs: Any) -> None:
        p.add_argument(*names, default=value if top else argparse.SUPPRESS, **kwargs)

    opt("--subscription", metavar="ID", help="Azure subscription (default: $AZURE_SUBSCRIPTION_ID)")
    opt("--allow-from", metavar="ADDR", help="the one address SSH is open to (create)")
    opt("--detect-address", action="store_true", value=False, help="--allow-from this machine's public address")
    opt("--region", value=_plan.DEFAULT_REGION, help=f"Azure region (default {_plan.DEFAULT_REGION})")
    opt("--size", value=_plan.DEFAULT_SIZE, help=f"VM size (default {_plan.DEFAULT_SIZE})")
    opt("--ssh-key", metavar="FILE", help="SSH public key (default ~/.ssh/id_ed25519.pub, else id_rsa.pub)")
    opt("--group", value=_plan.DEFAULT_GROUP, help=f"resource group (default {_plan.DEFAULT_GROUP})")
    opt("--name", value=_plan.DEFAULT_NAME, help=f"VM name (default {_plan.DEFAULT_NAME})")
    opt("--user", value=_plan.DEFAULT_USER, help=f"the VM's admin user (default {_plan.DEFAULT_USER})")


def main(
    argv: Sequence[str] | None = None, *, environ: Mapping[str, str] | None = None, connect: Connect | None = None
) -> int:
    """Entry point of ``otel-vm``; returns the exit status.

    Args:
        argv: the arguments (default ``sys.argv[1:]``).
        environ: the environment (default ``os.environ``).
        connect: makes the SDK clients (default: :func:`._azure.connect`, DefaultAzureCredential).
    """
    env = os.environ if environ is None else environ
    try:
        args = build_parser().parse_args(argv)
        return Vm(args, env, connect).dispatch()
    except OtelRunError as exc:
        print(f"otel-vm: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("otel-vm: interrupted (`otel-vm status` says where the VM stands)", file=sys.stderr)
        return 130


class Vm:
    """One invocation: the settings from flags and environment, the state directory, the commands."""

    def __init__(self, args: argparse.Namespace, environ: Mapping[str, str], connect: Connect | None) -> None:
        self.args = args
        self.environ = environ
        self._connect = connect
        config = environ.get(_env.XDG_CONFIG_HOME) or os.path.join(
            environ.get(_env.HOME) or os.path.expanduser("~"), ".config"
        )
        self.state_dir: Path = Path(config) / "otel-run" / "vm" / str(args.group)

    def dispatch(self) -> int:
        command: str = self.args.command
        return int(getattr(self, f"cmd_{command}")())

    # ------------------------------------------------------------ commands

    def cmd_create(self) -> int:
        a = self.args
        dry = a.dry_run
        settings = self.settings(dry_run=dry)
        from otel_run.vm import _cloudinit

        repo, commit = self._project(dry)
        token = PLACEHOLDER_SECRET if dry else self._secret("collector-token")
        password = PLACEHOLDER_SECRET if dry else self._secret("grafana-password")
        try:
            cloud = _cloudinit.render(
                repo=repo, commit=commit, user=settings.user, collector_token=token, grafana_password=password
            )
            steps = _plan.plan(settings, _cloudinit.custom_data(cloud))
        except PlanError as exc:
            raise OtelRunError(str(exc)) from None
        if dry:
            if a.format == "json":
                json.dump([step.request() for step in steps], sys.stdout, indent=2)
                sys.stdout.write("\n")
            else:
                for step in steps:
                    print(f"PUT {step.url}  ({step.title} {step.name})")
            return 0
        azure = self.azure(settings)
        changed = azure.create(steps)
        status = azure.status()
        self._save({"address": status.address, "region": settings.region, "size": settings.size, "commit": commit})
        self._say(f"{'created' if changed else 'nothing to change'}: {settings.name} at {status.address or '?'}")
        if not a.no_wait and status.address:
            bundle = (lambda: _bundle(_checkout(), commit)) if repo == BUNDLE_REPO else None
            ready = self.ssh().wait_ready(READY_TIMEOUT_S, self._say, bundle)
            self._say(f"ready: otel-run at {ready} (`otel-vm run -- make bench`, `otel-vm tunnel`)")
            if ready and ready != commit:
                self._say(
                    f"note: the VM was provisioned at {ready[:12]}, not {commit[:12]}: a VM's cloud-init runs once "
                    "(destroy and create again for a new commit)"
                )
        return 0

    def cmd_status(self) -> int:
        settings = self.settings()
        azure = self.azure(settings)
        if not azure.group_exists():
            self._report({"group": settings.group, "exists": False}, f"{settings.group}: no such resource group")
            return 0
        st = azure.status()
        if st.address:
            self._save({"address": st.address})
        data = {"group": settings.group, "name": settings.name, **st.__dict__}
        text = (
            f"{settings.name}: {st.power}, {st.size}, {st.address or 'no address'}, expires {st.expires or '?'}"
            if st.exists
            else f"{settings.group}: exists, but holds no VM {settings.name} (`otel-vm create` completes it)"
        )
        self._report(data, text)
        return 0

    def cmd_start(self) -> int:
        self.azure(self.settings()).start()
        self._say("started")
        return 0

    def cmd_stop(self) -> int:
        self.azure(self.settings()).stop()
        self._say("deallocated: no compute bill (disk and address remain; `otel-vm destroy` removes all)")
        return 0

    def cmd_destroy(self) -> int:
        settings = self.settings()
        azure = self.azure(settings)
        if not azure.group_exists():
            self._say(f"{settings.group}: no such resource group, nothing to destroy")
            return 0
        if not self.args.yes:
            if not sys.stdin.isatty():
                raise UsageError(f"destroy deletes the resource group {settings.group}: confirm with --yes")
            answer = input(f"delete the resource group {settings.group} and everything in it? [y/N] ")
            if answer.strip().lower() not in ("y", "yes"):
                self._say("kept")
                return 1
        azure.destroy()
        for name in ("vm.json", "known_hosts", "collector-token", "grafana-password"):
            (self.state_dir / name).unlink(missing_ok=True)  # the next VM gets secrets of its own
        self._say(f"destroyed {settings.group}")
        return 0

    def cmd_ssh(self) -> int:
        return self.ssh().run(_after_dashes(self.args.args), tty=sys.stdin.isatty())

    def cmd_run(self) -> int:
        command = _after_dashes(self.args.args)
        if not command:
            raise UsageError("run: give the command after --: otel-vm run -- make bench")
        return self.ssh().run(command)

    def cmd_fetch(self) -> int:
        from otel_run.store._layout import store_root
        from otel_run.vm import _remote

        store = store_root(self.environ, self.args.store)
        results = self.state_dir / "results"
        added, running = _remote.fetch(self.ssh(), store, results)
        note = f"; {running} still running on the VM, left for the next fetch" if running else ""
        self._say(f"{added} runs added to {store} (otel-trace list), results/ in {results}{note}")
        return 0

    def cmd_tunnel(self) -> int:
        from otel_run.vm import _remote

        ssh = self.ssh()
        token = self.state_dir / "collector-token"
        self._read_secret("collector-token")  # made by create on this machine: say so now if it is not
        for what, local, _ in _remote.FORWARDS:
            self._say(f"{what}: 127.0.0.1:{local}")
        self._say(
            "send to it with OTEL_EXPORTER_OTLP_ENDPOINT=https://localhost:14318 "
            f'OTEL_EXPORTER_OTLP_HEADERS="authorization=Bearer $(cat {token})" and the certificate from '
            "`otel-vm ssh -- cat /etc/otelcol/tls/cert.pem` as OTEL_EXPORTER_OTLP_CERTIFICATE; Ctrl-C closes it"
        )
        return ssh.tunnel()

    # ------------------------------------------------------------ settings

    def settings(self, dry_run: bool = False) -> Settings:
        """The VM's settings from flags and environment, validated (one line naming the flag)."""
        a = self.args
        subscription = a.subscription or self.environ.get(_env.AZURE_SUBSCRIPTION_ID, "")
        notes: list[str] = []
        if not subscription:
            if not dry_run:
                raise OtelRunError("no subscription: give --subscription ID or set AZURE_SUBSCRIPTION_ID")
            subscription = PLACEHOLDER_SUBSCRIPTION
            notes.append(f"subscription {subscription}")
        allow_from = a.allow_from
        if a.detect_address and not allow_from:
            allow_from = detect_address()
        if not allow_from:
            if a.command == "create" and not dry_run:
                raise OtelRunError("create: give --allow-from ADDR (the one address SSH opens to) or --detect-address")
            allow_from = PLACEHOLDER_ADDRESS
            if dry_run:
                notes.append(f"--allow-from {allow_from}")
        key = self._public_key(required=a.command == "create" and not dry_run)
        if key is None:  # only create puts the key into the VM; the other commands need none of it
            key = PLACEHOLDER_KEY
            if dry_run:
                notes.append("an SSH key")
        if notes:
            self._say(f"dry run with placeholders for {', '.join(notes)}")
        expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=getattr(a, "days", _plan.DEFAULT_DAYS))).date()
        settings = Settings(
            subscription=subscription,
            allow_from=allow_from,
            ssh_public_key=key,
            owner=_owner(self.environ),
            expires=expires.isoformat(),
            group=a.group,
            name=a.name,
            region=a.region,
            size=a.size,
            user=a.user,
            shutdown=getattr(a, "shutdown", _plan.DEFAULT_SHUTDOWN),
        )
        try:
            settings.validate()
        except PlanError as exc:
            raise OtelRunError(str(exc)) from None
        return settings

    def _public_key(self, required: bool) -> str | None:
        given = self.args.ssh_key
        candidates = self._key_candidates()
        for path in candidates:
            try:
                return path.read_text(encoding="utf-8").strip()
            except FileNotFoundError:
                continue
            except (OSError, UnicodeDecodeError) as exc:
                raise OtelRunError(f"--ssh-key {path}: cannot read it ({exc})") from None
        if given:
            raise OtelRunError(f"--ssh-key {given}: no such file")
        if not required:
            return None
        raise OtelRunError(
            f"no SSH key: {candidates[0]} does not exist (ssh-keygen -t ed25519, or give --ssh-key FILE)"
        )

    def _private_key(self) -> Path:
        """The private half of the public key: the same path without ``.pub``."""
        candidates = self._key_candidates()
        public = next((p for p in candidates if p.exists()), candidates[0])
        return public.with_suffix("") if public.suffix == ".pub" else public

    def _key_candidates(self) -> list[Path]:
        """``--ssh-key``, else the default public keys, in the order they are tried."""
        if self.args.ssh_key:
            return [Path(self.args.ssh_key).expanduser()]
        return [self._home() / ".ssh" / name for name in DEFAULT_KEYS]

    def _home(self) -> Path:
        return Path(self.environ.get(_env.HOME) or os.path.expanduser("~"))

    def _project(self, dry_run: bool) -> tuple[str, str]:
        """Where the VM gets the project from and which commit: ``--repo`` (a git URL the VM can
        clone), else this checkout as a git bundle sent over SSH; ``--commit``, else HEAD."""
        repo = self.args.repo or BUNDLE_REPO
        commit = self.args.commit or _git(_checkout(), "rev-parse", "HEAD")
        if not commit:
            if dry_run:
                return repo, "COMMIT"
            raise OtelRunError("--commit: not in a git checkout: give the commit the VM checks out")
        if repo == BUNDLE_REPO and not dry_run:
            if not _git(_checkout(), "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}"):
                raise OtelRunError(f"--commit {commit}: not a commit of this checkout ({_checkout()})")
            if subprocess.run(
                ["git", "-C", str(_checkout()), "merge-base", "--is-ancestor", commit, "HEAD"], check=False
            ).returncode:
                raise OtelRunError(f"--commit {commit}: not in HEAD's history (the bundle holds HEAD's)")
        return repo, commit

    # ------------------------------------------------------------ clients, state

    def azure(self, settings: Settings) -> Azure:
        from otel_run.vm._azure import Azure, connect

        clients = (self._connect or connect)(settings.subscription)
        return Azure(clients, settings, self._say)

    def ssh(self) -> Ssh:
        from otel_run.vm._remote import Ssh

        state = self._load()
        return Ssh(
            str(state.get("address", "")),
            self.args.user,
            self._private_key(),
            self.state_dir / "known_hosts",
            self.environ,
        )

    def _secret(self, name: str) -> str:
        """A secret of this VM, generated once and kept 0600 (a re-create reuses it)."""
        path = self.state_dir / name
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            pass
        value = secrets.token_urlsafe(32)
        fd = _wire.open_private(str(path), os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return value

    def _read_secret(self, name: str) -> str:
        try:
            return (self.state_dir / name).read_text().strip()
        except FileNotFoundError:
            raise OtelRunError(f"{self.state_dir / name}: missing (was the VM created from this machine?)") from None

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads((self.state_dir / "vm.json").read_text())
        except FileNotFoundError:
            raise OtelRunError(
                f"no VM on record in {self.state_dir} (`otel-vm create`, or `otel-vm status` for one made elsewhere)"
            ) from None
        except ValueError as exc:
            raise OtelRunError(f"{self.state_dir / 'vm.json'}: not JSON ({exc})") from None
        return data if isinstance(data, dict) else {}

    def _save(self, update: Mapping[str, Any]) -> None:
        try:
            data = self._load()
        except OtelRunError:
            data = {}
        data.update(update, group=self.args.group, name=self.args.name, user=self.args.user)
        tmp = self.state_dir / "vm.json.tmp"
        fd = _wire.open_private(str(tmp), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, self.state_dir / "vm.json")

    def _report(self, data: Mapping[str, Any], text: str) -> None:
        if getattr(self.args, "format", "text") == "json":
            json.dump(data, sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(text)

    @staticmethod
    def _say(line: str) -> None:
        print(f"otel-vm: {line}", file=sys.stderr, flush=True)


def detect_address(url: str = DETECT_URL) -> str:
    """This machine's public address as the internet sees it (``--detect-address``)."""
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return str(response.read(64).decode().strip())
    except (OSError, ValueError) as exc:
        raise OtelRunError(f"--detect-address: {url} did not answer ({exc}): give --allow-from ADDR") from None


def _owner(environ: Mapping[str, str]) -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = environ.get("USER") or "unknown"
    return f"{user}@{socket.gethostname()}"


def _checkout() -> Path:
    """This project's git checkout (the package sits in instrumentation/otel_run/ of it)."""
    return Path(__file__).resolve().parents[3]


def _bundle(root: Path, commit: str) -> bytes:
    """A git bundle of HEAD's history (which holds ``commit``): what the VM clones the project from."""
    done = subprocess.run(["git", "-C", str(root), "bundle", "create", "-", "HEAD"], capture_output=True, check=False)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise OtelRunError(f"git bundle of {root} for {commit[:12]}: {reason[-1] if reason else 'failed'}")
    return done.stdout


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
    except OSError:
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _after_dashes(args: list[str]) -> list[str]:
    return args[1:] if args[:1] == ["--"] else args
