"""Planted secrets, in the forms CI uses, are found nowhere otel-run wrote or shows.

Real traced runs only: otel-run starts a traced Python, which starts
grandchildren (command-line tools, stand-ins that are ``/bin/true`` under the
tool's name; ``sh -c`` scripts; traced Pythons that fail with the secret in
their exception) with the secrets in their arguments, in the environment
variables they inherit, in URLs; the runs carry secrets in their labels and
export settings, and are exported to a live receiver (``otel-trace serve``)
and to a dead endpoint. Then every byte under the store (traces, index.jsonl,
export.jsonl, outbox, pushed), the receiver's store, otel-run's own output and
every reader's output (``otel-trace list``, ``show``, ``export``, ``push``) is
searched for each planted secret: for the whole secret and for the first and
last 10 characters of its random part (a redaction that leaves half a key is a
leak). The corpus counts the forms; the assertion message says how many leaked.

The must-not-redact half: trace ids, git SHAs, ports after ``-p``, a curl user
without a password are stored as they were.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shlex
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from otel_run.store._store import Store
from tests.conftest import PYTHON, Runner, Serve, wait_for_record

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Form:
    """One planted secret: what it is and where it was put."""

    def __init__(self, name: str, secret: str, random_part: str) -> None:
        self.name = name
        self.secret = secret
        self.probes = {secret, random_part[:10], random_part[-10:]}


class Corpus:
    """The planted forms; each secret is new, with a random part of its own."""

    def __init__(self) -> None:
        self.forms: list[Form] = []

    def _random(self, n: int, alphabet: str = _ALPHABET) -> str:
        seed = hashlib.sha256(f"planted-{len(self.forms)}-{n}".encode()).digest()
        out = ""
        while len(out) < n:
            seed = hashlib.sha256(seed).digest()
            out += "".join(alphabet[b % len(alphabet)] for b in seed)
        return out[:n]

    def plant(self, name: str, shape: str = "pw") -> str:
        """A new secret of ``shape``, recorded under ``name``."""
        r = self._random(40)
        secret = {
            "pw": "Pw" + r[:14],
            "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
            + base64.urlsafe_b64encode(json.dumps({"sub": r[:12]}).encode()).decode().rstrip("=")
            + "."
            + r[:32]
            + "-_"
            + r[32:40],
            "akia": "AKIA" + self._random(16, _ALPHABET[:36]),
            "asia": "ASIA" + self._random(16, _ALPHABET[:36]),
            "ghp": "ghp_" + r[:36],
            "gho": "gho_" + r[:36],
            "ghs": "ghs_" + r[:36],
            "github_pat": "github_pat_11" + r[:20] + "_" + r[20:40],
            "glpat": "glpat-" + r[:20],
            "xoxb": "xoxb-1234567890-" + r[:24],
            "xoxp": "xoxp-1234567890-" + r[:24],
            "aiza": "AIza" + r[:35],
            "sk_live": "sk_live_" + r[:32],
            "openai": "sk-proj-" + r[:40],
            "npm": "npm_" + r[:36],
            "pypi": "pypi-AgEIcHlwaS5vcmc" + r[:40],
            "hf": "hf_" + r[:34],
            "ya29": "ya29.a0" + r[:40],
            "b64": r[:30] + "+/" + r[30:40],
        }[shape]
        random_part = secret.rsplit(".", 1)[-1] if shape == "jwt" else r[: min(len(secret), 40)]
        if shape in ("akia", "asia"):
            random_part = secret[4:]
        self.forms.append(Form(name, secret, random_part))
        return secret


def _private_key(corpus: Corpus, name: str, kind: str) -> str:
    body = corpus.plant(name, "b64")
    lines = [body[i : i + 20] for i in range(0, len(body), 20)]
    return f"-----BEGIN {kind} PRIVATE KEY-----\n" + "\n".join(lines) + f"\n-----END {kind} PRIVATE KEY-----"


def command_line_forms(corpus: Corpus) -> list[list[str]]:
    """Command lines of common tools, each with one new secret."""
    c = corpus.plant
    uuid = "9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f"
    return [
        # mysql and friends: -p glued and separate, --password
        ["mysql", "-uroot", f"-p{c('mysql -pSECRET')}", "-h", "db", "app"],
        ["mysql", "-u", "root", "-p", c("mysql -p SECRET"), "app"],
        ["mysqldump", f"--password={c('mysqldump --password=')}", "app"],
        ["mysql", "--password", c("mysql --password SECRET")],
        ["mariadb", f"-p{c('mariadb -pSECRET')}"],
        ["mysqladmin", "-uroot", f"-p{c('mysqladmin -pSECRET')}", "status"],
        # postgres
        ["psql", f"postgresql://app:{c('psql URL password')}@db:5432/app"],
        ["psql", f"host=db user=app password={c('psql conninfo password=')} dbname=app"],
        ["pg_dump", f"--dbname=postgres://app:{c('pg_dump --dbname=URL')}@db/app"],
        # mongo
        ["mongosh", f"mongodb+srv://admin:{c('mongodb+srv URL')}@cluster0.example.net/app"],
        ["mongo", "-u", "admin", "-p", c("mongo -p SECRET"), "--authenticationDatabase", "admin"],
        ["mongodump", "--username", "admin", "--password", c("mongodump --password SECRET")],
        ["mongosh", "-u", "admin", f"-p{c('mongosh -pSECRET')}"],
        # redis-cli
        ["redis-cli", "-h", "cache", "-a", c("redis-cli -a SECRET"), "ping"],
        ["redis-cli", "--pass", c("redis-cli --pass SECRET")],
        ["redis-cli", "-u", f"redis://default:{c('redis:// URL')}@cache:6379/0"],
        ["redis-cli", "--user", "app", f"--pass={c('redis-cli --pass=SECRET')}"],
        # curl
        ["curl", "-u", f"deploy:{c('curl -u user:SECRET')}", "https://api.example.com/"],
        ["curl", f"-udeploy:{c('curl -uuser:SECRET')}", "https://api.example.com/"],
        ["curl", "--user", f"deploy:{c('curl --user user:SECRET')}", "https://api.example.com/"],
        ["curl", "-H", f"Authorization: Bearer {c('curl -H Authorization: Bearer')}", "https://api.example.com/"],
        ["curl", "-H", f"X-Api-Key: {c('curl -H X-Api-Key:')}", "https://api.example.com/"],
        ["curl", "-H", f"PRIVATE-TOKEN: {c('curl -H PRIVATE-TOKEN:')}", "https://gitlab.example.com/api/v4/user"],
        ["curl", f"https://api.example.com/v1/items?page=2&access_token={c('URL ?access_token=')}"],
        ["curl", "-d", f"client_id=app&client_secret={c('curl -d client_secret=')}&grant_type=x", "https://h/t"],
        ["curl", "--oauth2-bearer", c("curl --oauth2-bearer SECRET"), "https://api.example.com/"],
        ["curl", "-b", f"sessionid={c('curl -b sessionid=')}", "https://app.example.com/"],
        ["curl", "-H", f"Cookie: session={c('curl -H Cookie: session=')}", "https://app.example.com/"],
        ["curl", f"https://deploy:{c('URL user:password@')}@registry.example.com/v2/"],
        ["curl", "-F", f"token={c('curl -F token=')}", "https://slack.example.com/api/files.upload"],
        # webhook URL paths
        ["curl", "-d", "{}", f"https://hooks.slack.com/services/T024BE7LD/B08PQ4S2K/{c('Slack webhook path')}"],
        ["curl", "-d", "{}", f"https://discord.com/api/webhooks/112233445566778899/{c('Discord webhook path')}"],
        [
            "curl",
            "-d",
            "{}",
            f"https://contoso.webhook.office.com/webhookb2/{uuid}@{uuid}/IncomingWebhook/"
            f"{c('Teams webhook path')}/{uuid}",
        ],
        ["curl", "-d", "{}", f"https://outlook.office.com/webhook/{c('Outlook webhook path')}/IncomingWebhook/x/y"],
        ["curl", f"https://api.telegram.org/bot123456789:{c('Telegram bot token path')}/sendMessage"],
        [
            "curl",
            f"https://chat.googleapis.com/v1/spaces/AAAA/messages?key={c('Google Chat key=', 'aiza')}"
            f"&token={c('Google Chat token=')}",
        ],
        # wget
        ["wget", "--user=deploy", f"--password={c('wget --password=')}", "https://files.example.com/a"],
        ["wget", "--http-password", c("wget --http-password SECRET"), "https://files.example.com/a"],
        ["wget", f"--header=Authorization: token {c('wget --header=Authorization: token', 'ghp')}", "https://h/a"],
        ["wget", f"ftp://deploy:{c('wget ftp:// URL')}@ftp.example.com/file"],
        # git
        ["git", "clone", f"https://x-access-token:{c('git clone token URL', 'ghs')}@github.com/org/repo.git"],
        ["git", "-c", f"http.extraHeader=Authorization: Basic {c('git -c extraHeader Basic', 'b64')}", "fetch"],
        ["git", "remote", "set-url", "origin", f"https://oauth2:{c('git glpat URL', 'glpat')}@gitlab.com/o/r.git"],
        ["git", "push", f"https://{c('git token as URL user', 'gho')}@github.com/org/repo.git", "main"],
        ["git", "-c", f'credential.helper=!f() {{ echo "password={c("git credential.helper")}"; }}; f', "fetch"],
        # docker / podman
        ["docker", "login", "-u", "ci", "-p", c("docker login -p SECRET"), "registry.example.com"],
        ["docker", "login", "--username", "ci", "--password", c("docker login --password SECRET"), "ghcr.io"],
        ["docker", "login", "-u", "ci", f"-p{c('docker login -pSECRET')}", "quay.io"],
        ["docker", "run", "-e", f"DB_PASSWORD={c('docker run -e DB_PASSWORD=')}", "-p", "8080:80", "app"],
        ["docker", "build", "--build-arg", f"NPM_TOKEN={c('docker build --build-arg NPM_TOKEN=', 'npm')}", "."],
        ["podman", "login", "-p", c("podman login -p SECRET"), "quay.io"],
        # npm / yarn / pip / twine
        ["npm", "config", "set", f"//registry.npmjs.org/:_authToken={c('npm _authToken=', 'npm')}"],
        ["npm", "config", "set", "//registry.npmjs.org/:_authToken", c("npm config set _authToken VALUE")],
        ["yarn", "config", "set", "npmAuthToken", c("yarn config set npmAuthToken VALUE")],
        ["npm", "whoami", "--registry", f"https://ci:{c('npm --registry URL')}@npm.example.com/"],
        ["pip", "install", "--index-url", f"https://__token__:{c('pip --index-url', 'pypi')}@pypi.example.com/simple"],
        ["pip", "install", "--extra-index-url", f"https://ci:{c('pip --extra-index-url')}@nexus.example.com/simple"],
        ["pip", "config", "set", "global.index-url", f"https://ci:{c('pip config set index-url')}@pypi.example.com/s"],
        ["twine", "upload", "-u", "__token__", "-p", c("twine -p pypi token", "pypi"), "dist/app.whl"],
        # gh
        ["gh", "secret", "set", "DEPLOY_KEY", "--body", c("gh secret set --body SECRET")],
        ["gh", "secret", "set", "API_TOKEN", "-b", c("gh secret set -b SECRET")],
        ["gh", "api", "-H", f"Authorization: token {c('gh api -H Authorization: token', 'ghs')}", "/repos/o/r"],
        # aws / az / gcloud
        ["aws", "configure", "set", "aws_secret_access_key", c("aws configure set aws_secret_access_key")],
        ["aws", "configure", "set", "aws_access_key_id", c("aws configure set aws_access_key_id", "akia")],
        ["terraform", "import", "aws_iam_access_key.ci", c("AWS ASIA key positional", "asia")],
        ["env", f"AWS_SECRET_ACCESS_KEY={c('env AWS_SECRET_ACCESS_KEY=')}", "aws", "s3", "ls"],
        ["az", "login", "--service-principal", "-u", uuid, "-p", c("az login -p SECRET"), "--tenant", uuid],
        ["az", "storage", "blob", "upload", "--account-name", "acct", "--account-key", c("az --account-key", "b64")],
        [
            "az",
            "storage",
            "blob",
            "list",
            "--connection-string",
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="
            + c("Azure connection string AccountKey=", "b64")
            + "==;EndpointSuffix=core.windows.net",
        ],
        ["az", "storage", "blob", "download", "--sas-token", f"sv=2022-11-02&ss=b&sig={c('az --sas-token')}"],
        ["gcloud", "services", "api-keys", "lookup", c("Google API key positional", "aiza")],
        ["env", f"CLOUDSDK_AUTH_ACCESS_TOKEN={c('CLOUDSDK_AUTH_ACCESS_TOKEN=', 'ya29')}", "gcloud", "projects", "list"],
        ["oauth2l", "info", c("Google OAuth token positional", "ya29")],
        # kubectl / helm
        ["kubectl", f"--token={c('kubectl --token=JWT', 'jwt')}", "get", "pods"],
        ["kubectl", "config", "set-credentials", "ci", f"--password={c('kubectl set-credentials --password=')}"],
        ["kubectl", "create", "secret", "generic", "db", f"--from-literal=password={c('kubectl --from-literal')}"],
        ["kubectl", "create", "secret", "docker-registry", "r", "--docker-password", c("kubectl --docker-password")],
        ["kubectl", "exec", "db-0", "--", "mysql", "-uroot", f"-p{c('kubectl exec -- mysql -pSECRET')}"],
        ["helm", "repo", "add", "c", "https://charts.example.com", "--password", c("helm repo add --password")],
        ["helm", "registry", "login", "reg.example.com", "-u", "ci", "-p", c("helm registry login -p")],
        ["helm", "upgrade", "--install", "app", "chart", "--set", f"db.password={c('helm --set db.password=')}"],
        # key shapes as positional arguments
        ["deploy-tool", c("JWT positional", "jwt")],
        ["maps-cli", c("Google AIza key positional", "aiza")],
        ["vault-import", c("AWS AKIA key positional", "akia")],
        ["release", c("GitHub ghp_ positional", "ghp")],
        ["release", c("GitHub github_pat_ positional", "github_pat")],
        ["glab-tool", c("GitLab glpat- positional", "glpat")],
        ["slack-notify", c("Slack xoxb- positional", "xoxb")],
        ["slack-notify", c("Slack xoxp- positional", "xoxp")],
        ["stripe-cli", c("Stripe sk_live_ positional", "sk_live")],
        ["openai-cli", c("OpenAI sk- positional", "openai")],
        ["publish", c("npm_ token positional", "npm")],
        ["hf-upload", c("Hugging Face hf_ positional", "hf")],
        ["ssh-add-key", _private_key(corpus, "OpenSSH private key block", "OPENSSH")],
        ["install-key", _private_key(corpus, "RSA private key block", "RSA")],
        # other tools with a password option
        ["openssl", "pkcs12", "-export", "-in", "c.pem", "-passout", f"pass:{c('openssl -passout pass:')}"],
        ["sshpass", "-p", c("sshpass -p SECRET"), "ssh", "-p", "2222", "deploy@host"],
    ]


# must-not-redact: stored exactly as given
KEPT = [
    ["psql", "-h", "db", "-p", "5432", "-U", "app", "app"],
    ["ssh", "-p", "2222", "deploy@host"],
    ["docker", "run", "-p", "8080:80", "nginx"],
    ["git", "checkout", "0123456789abcdef0123456789abcdef01234567"],
    ["pytest", "-p", "no:cacheprovider", "-k", "token and not slow"],
    ["curl", "-u", "alice", "https://api.example.com/"],
    ["mysql", "-p", "-h", "dbhost", "app"],
    ["redis-cli", "-p", "6379", "ping"],
    ["echo", "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "9f1c2d3e-4b5a-6c7d-8e9f-0a1b2c3d4e5f"],
    ["sha256sum", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
]

# The command's Python: runs each job (argv, or a shell script), in order.
PARENT = textwrap.dedent(
    """
    import json, os, subprocess, sys
    jobs = json.load(open(sys.argv[1]))
    for job in jobs:
        if job.get("set"):
            os.environ.update(job["set"])
        env = {**os.environ, **job["env"]} if job.get("env") else None
        subprocess.run(job["argv"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    """
)

# A traced Python grandchild that fails quoting its argument (exception.message, the stack).
FAILS = "import sys; raise RuntimeError('login failed with ' + sys.argv[1])"

# Credential-named variables of otel-run's environment whose values reappear in grandchildren's argv.
ENV_NAMES = [
    ("DB_PASS", "pw"),
    ("MYSQL_PWD", "pw"),
    ("PGPASSWORD", "pw"),
    ("SESSION", "jwt"),
    ("COOKIE", "pw"),
    ("APP_SECRET", "pw"),
    ("DEPLOY_TOKEN", "pw"),
    ("SIGNING_KEY", "pw"),
    ("SMTP_PASSWORD", "pw"),
    ("REDIS_PASS", "pw"),
    ("GH_PAT", "pw"),
    ("DJANGO_SESSION", "pw"),
    ("CI_JOB_JWT", "jwt"),
    ("AWS_SESSION_TOKEN", "b64"),
]


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Serve]:
    """A live receiver (writing into a second store) that wants a bearer token."""
    server = Serve(tmp_path / "home", token="Hm" + hashlib.sha256(b"home").hexdigest()[:20]).start()
    yield server
    server.stop()


def _stubs(tmp_path: Path, argvs: list[list[str]]) -> Path:
    """The tools, as ``/bin/true`` under their names."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for argv in argvs:
        if not (bin_dir / argv[0]).exists():
            (bin_dir / argv[0]).symlink_to("/bin/true")
    return bin_dir


def _outputs(runner: Runner, run_ids: list[str]) -> dict[str, str]:
    """What every reader prints about the runs."""
    wide = runner.env(COLUMNS="400")
    out: dict[str, str] = {}
    for args in (["list", "-n", "0"], ["list", "-n", "0", "--format", "json"]):
        result = runner.trace_cli(*args, env=wide)
        assert result.returncode == 0, result.stderr
        out[" ".join(args)] = result.stdout + result.stderr
    for run_id in run_ids:
        for args in (
            ["show", run_id, "--all"],
            ["show", run_id, "--format", "json"],
            ["export", run_id],
            ["export", run_id, "--format", "chrome"],
        ):
            result = runner.trace_cli(*args, env=wide)
            assert result.returncode == 0, result.stderr
            out[" ".join(args)] = result.stdout + result.stderr
    return out


def _everything_under(path: Path) -> bytes:
    return b"\n".join(p.name.encode() + b"\n" + p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file())


def test_planted_secrets_are_found_nowhere(runner: Runner, home: Serve, tmp_path: Path) -> None:
    corpus = Corpus()
    forms = command_line_forms(corpus)
    bin_dir = _stubs(tmp_path, [*forms, *KEPT, ["tool"]])
    tool = str(bin_dir / "tool")

    def at(argv: list[str]) -> list[str]:
        return [str(bin_dir / argv[0]), *argv[1:]]

    jobs: list[dict[str, object]] = []
    for argv in forms:  # each as a grandchild's argv and inside a shell script
        jobs.append({"argv": at(argv)})
        jobs.append({"argv": ["sh", "-c", shlex.join(at(argv))]})
    for argv in KEPT:
        jobs.append({"argv": at(argv)})

    # credential-named variables given to otel-run, reappearing in a grandchild's argv
    env_secrets = {name: corpus.plant(f"${name} in a grandchild's argv", shape) for name, shape in ENV_NAMES}
    database_password = corpus.plant("password of $DATABASE_URL in a grandchild's argv")
    env_secrets["DATABASE_URL"] = f"postgres://app:{database_password}@db:5432/app"
    for name, value in env_secrets.items():
        value = database_password if name == "DATABASE_URL" else value
        jobs.append({"argv": [tool, "--db", value]})
        jobs.append({"argv": [PYTHON, "-c", FAILS, value]})
        jobs.append({"argv": ["sh", "-c", f"{shlex.quote(tool)} {value} && {shlex.quote(PYTHON)} -c pass {value}"]})
    # ... set at run time by the traced parent, or only in the environment it gives a child
    runtime = corpus.plant("variable set in os.environ at run time")
    jobs.append({"set": {"RUNTIME_TOKEN": runtime}, "argv": [tool, runtime]})
    child_only = corpus.plant("variable only in the environment given to a child")
    jobs.append({"env": {"CHILD_PASSWORD": child_only}, "argv": [PYTHON, "-c", FAILS, child_only]})
    handed = corpus.plant("variable a child drops before passing the value on")
    dropper = f"import os, subprocess, sys; os.environ.pop('HANDED_SECRET'); subprocess.run([{tool!r}, sys.argv[1]])"
    jobs.append({"env": {"HANDED_SECRET": handed}, "argv": [PYTHON, "-c", dropper, handed]})

    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    parent = tmp_path / "parent.py"
    parent.write_text(PARENT)
    own_args = [corpus.plant("JWT in the command's own argv", "jwt"), "--db-password", corpus.plant("command flag")]

    # the exports: a live receiver (token in the header and the URL), a dead endpoint with a password in it
    endpoint_token = corpus.plant("export endpoint ?access_token=")
    header_token = home.token or ""
    corpus.forms.append(Form("OTEL_EXPORTER_OTLP_HEADERS bearer token", header_token, header_token[2:]))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://ci:{corpus.plant('dead endpoint user:password@')}@127.0.0.1:{closed.getsockname()[1]}"
        env = runner.env(
            **env_secrets,
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=f"{home.endpoint}/v1/traces?access_token={endpoint_token}",
            OTEL_EXPORTER_OTLP_HEADERS=f"Authorization=Bearer%20{header_token}",
        )
        outputs: dict[str, str] = {}
        main = runner.run("--export", PYTHON, str(parent), str(jobs_file), *own_args, env=env, quiet=False)
        outputs["otel-run (main run)"] = (main.stdout + main.stderr).decode()
        assert main.returncode == 0, main.stderr
        main_run = runner.last()[0]

        # labels: a credential assignment, a JWT, the value of a credential-named variable; a series
        label_token = corpus.plant("label run's $RELEASE_TOKEN in its label")
        labels = [
            ["-l", f"ci token={corpus.plant('label ci token=X')}"],
            ["-l", f"nightly {corpus.plant('label with a JWT', 'jwt')}"],
            ["-l", f"release {label_token}", "--endpoint", dead],
            ["--runs", "2", "-l", f"bench password={corpus.plant('series label password=X')}"],
        ]
        for args in labels:
            result = runner.run(*args, PYTHON, "-c", "pass", env=runner.env(RELEASE_TOKEN=label_token), quiet=False)
            outputs[f"otel-run (label run {len(outputs)})"] = (result.stdout + result.stderr).decode()
            assert result.returncode == 0, result.stderr
        pushed = runner.trace_cli("push", "--unpushed", "--endpoint", dead)  # waits for the deliverers
        outputs["otel-trace push"] = pushed.stdout + pushed.stderr
        assert "not sent" in pushed.stderr, pushed.stderr

    assert len(corpus.forms) >= 76, len(corpus.forms)
    record = wait_for_record(runner.store, [main_run.run_id])[main_run.run_id]
    assert record["ok"] is True, record  # the token in the header and the URL were sent
    store = Store(str(runner.store))
    runs = [r.run_id for r in store.runs()]
    assert len(runs) == 6
    outputs.update(_outputs(runner, runs))

    # what carried the secrets was recorded, so the search can find them
    trace = store.load_trace(main_run.trace_id)
    stored_args = [s.attributes.get("process.command_args") for s in trace.spans]
    assert sum(1 for a in stored_args if a and a[0].endswith("/mysql")) >= 2
    assert any(e.name == "exception" for s in trace.spans for e in s.events)
    for argv in KEPT:
        assert at(argv) in stored_args, f"{argv} was not stored as given"

    places = {"store": _everything_under(runner.store), "receiver's store": _everything_under(home.store)}
    places.update({name: text.encode() for name, text in outputs.items()})
    leaks = []
    for form in corpus.forms:
        where = sorted({p for p, data in places.items() for probe in form.probes if probe.encode() in data})
        if where:
            leaks.append(f"{form.name} (in {', '.join(where)})")
    print(f"secrets leaked / planted: {len(leaks)} / {len(corpus.forms)}")
    assert not leaks, f"{len(leaks)} of {len(corpus.forms)} planted secrets leaked:\n" + "\n".join(leaks)
    assert b"REDACTED" in places["store"]
    assert "ci token=REDACTED" in {r.label for r in store.runs()}  # still a label, minus the secret
