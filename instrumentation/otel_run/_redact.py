"""Redaction of credentials before anything is written.

Every value that leaves a traced process passes through here first: command
arguments, span and event attributes, URLs, labels. What is removed:

* values of names that carry credentials (``Authorization``, ``*_API_KEY``,
  ``*TOKEN``, ``*SECRET*``, ``*PASSWORD*``, ``*_PASS``, ``*_PWD``, ``*JWT*``,
  ``*SESSION``, cookies, ``--api-key VALUE``, ``NAME=VALUE`` and
  ``Name: value`` pairs inside a longer text);
* the password options of common tools, glued or separate, as a command line
  or inside a shell script: ``mysql -pX``/``-p X``, ``mongo -p X``,
  ``redis-cli -a X``, ``curl -u user:X``, ``docker|podman|helm|az login -p X``,
  ``twine -p X``, ``sshpass -p X``, ``gh secret set -b X``, ``openssl -passout
  pass:X``, ``npm|yarn|aws|git … config set NAME X`` for a credential NAME;
* well-known key shapes anywhere in a text: JWTs, codeflash ``cf-…``, OpenAI
  ``sk-…``, GitHub ``ghp_…``/``gho_…``/``ghs_…``/``github_pat_…``, GitLab
  ``glpat-…``, Slack ``xox?-…``, Google ``AIza…`` and ``ya29.…``, Stripe
  ``sk_live_…``, npm ``npm_…``, PyPI ``pypi-…``, Hugging Face ``hf_…``, AWS
  ``AKIA…``/``ASIA…``, private key blocks;
* ``Bearer``/``Basic``/``Token`` credentials;
* URL user-info, query parameters with a credential name (and the ones the
  HTTP semantic conventions list: ``AWSAccessKeyId``, ``Signature``, ``sig``,
  ``X-Goog-Signature``), and the secret path of webhook URLs (Slack, Discord,
  Teams/Office 365, Telegram, Zapier, IFTTT);
* the values of the credential-named environment variables a process has or
  gives a child (:func:`remember_environment`), the passwords in URL-valued
  variables and the credentials in ``OTEL_EXPORTER_OTLP_*HEADERS``, wherever
  they turn up (a descendant's argv, an exception message, a label).

Long hex strings (trace ids, git SHAs), UUIDs and ports after ``-p`` of other
tools are kept. The replacement is ``REDACTED``, as in the semantic
conventions' ``url.full``. This module is loaded by the bootstrap of every
traced process, so it uses only ``str`` methods (no ``re``, which alone costs
milliseconds to import), and its work happens when something is written.
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

REDACTED = "REDACTED"

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_WORD = frozenset(_ALNUM + "_-.")
_TOKEN_CHARS = frozenset(_ALNUM + "_-")
_ALNUM_CHARS = frozenset(_ALNUM)
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_VALUE_END = frozenset(" \t\r\n\"'`,;&)}]>")

# Shapes of keys recognised anywhere in a text: prefix, least length of the rest, its characters.
_KEY_SHAPES = (
    ("sk-", 16, _TOKEN_CHARS),  # OpenAI, Anthropic
    ("cf-", 16, _TOKEN_CHARS),  # codeflash
    ("ghp_", 20, _TOKEN_CHARS),  # GitHub
    ("gho_", 20, _TOKEN_CHARS),
    ("ghs_", 20, _TOKEN_CHARS),
    ("ghu_", 20, _TOKEN_CHARS),
    ("ghr_", 20, _TOKEN_CHARS),
    ("github_pat_", 20, _TOKEN_CHARS),
    ("glpat-", 16, _TOKEN_CHARS),  # GitLab
    ("gldt-", 16, _TOKEN_CHARS),
    ("glrt-", 16, _TOKEN_CHARS),
    ("glptt-", 16, _TOKEN_CHARS),
    ("xoxb-", 10, _TOKEN_CHARS),  # Slack
    ("xoxp-", 10, _TOKEN_CHARS),
    ("xoxa-", 10, _TOKEN_CHARS),
    ("xoxe-", 10, _TOKEN_CHARS),
    ("xoxr-", 10, _TOKEN_CHARS),
    ("xoxs-", 10, _TOKEN_CHARS),
    ("xapp-", 10, _TOKEN_CHARS),
    ("AIza", 30, _TOKEN_CHARS),  # Google API key
    ("ya29.", 20, _WORD),  # Google OAuth access token
    ("sk_live_", 16, _TOKEN_CHARS),  # Stripe
    ("sk_test_", 16, _TOKEN_CHARS),
    ("rk_live_", 16, _TOKEN_CHARS),
    ("whsec_", 16, _TOKEN_CHARS),
    ("npm_", 30, _ALNUM_CHARS),  # not npm_config_… variables
    ("pypi-AgE", 30, _TOKEN_CHARS),  # a macaroon: not pypi-some-package-name
    ("hf_", 30, _ALNUM_CHARS),  # Hugging Face, not hf_hub_…
    ("SG.", 20, _WORD),  # SendGrid
    ("AKIA", 16, _UPPER),  # AWS access key ids: long-term and temporary
    ("ASIA", 16, _UPPER),
)
_SHORTEST_KEY = 14  # no shape fits in fewer characters (a JWT: 10 + 1 + 2 + 1)
_JWT = "eyJ"  # base64url of '{"': a JWT's header, then two more dot-separated parts
_PRIVATE_KEY = "PRIVATE KEY"
_AUTH_SCHEMES = ("bearer ", "basic ", "token ", "digest ")
_URL_QUERY_ALWAYS = frozenset({"awsaccesskeyid", "signature", "sig", "x-goog-signature"})

# Webhook hosts (the host or a subdomain) and the path prefix after which the URL is the secret.
_WEBHOOKS = (
    ("hooks.slack.com", "/services/"),
    ("hooks.slack.com", "/workflows/"),
    ("hooks.slack.com", "/triggers/"),
    ("discord.com", "/api/webhooks/"),
    ("discordapp.com", "/api/webhooks/"),
    ("webhook.office.com", "/"),
    ("outlook.office.com", "/webhook/"),
    ("outlook.office365.com", "/webhook/"),
    ("api.telegram.org", "/bot"),
    ("api.telegram.org", "/file/bot"),
    ("hooks.zapier.com", "/hooks/"),
    ("maker.ifttt.com", "/trigger/"),
)
_WEBHOOK_HINTS = ("hooks.", "discord", "office", "telegram", "ifttt")
"""What a webhook host holds (a quick test before the table)."""

# Name segments (split on _ - . / and spaces) that make a name secret anywhere in it,
# as the whole of its last segment, or at the end of any segment.
_SECRET_SEGMENTS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "pass",
        "pwd",
        "passphrase",
        "credential",
        "credentials",
        "authorization",
        "auth",
        "cookie",
        "apikey",
        "key",
        "signature",
        "jwt",
        "bearer",
        "pat",
        "sessionid",
    }
)
_SECRET_LAST_SEGMENTS = frozenset({"session"})
_SECRET_SUFFIXES = (
    "token",
    "secret",
    "password",
    "apikey",
    "passwd",
    "accesskey",
    "accountkey",
    "privatekey",
    "secretkey",
    "sessionid",
)
_HARMLESS_NAMES = frozenset({"pwd", "desktop_session", "ssh_auth_sock"})
"""The working directory (``PWD``) and desktop-session variables, not credentials."""

# Command-line options of common tools whose value is a secret: "v" the value,
# "u" the part after the first colon (``user:password``). A tool's table applies
# once its sub-command (if any) was seen; "end" options also end the tool's
# command (``sshpass -p X ssh -p 22 host``: the rest is another command).
_V = "v"
_USERINFO = "u"
_END = "end"
_DASH_P = (None, {"-p": _V})
_LOGIN = ("login", {"-p": _V})
_TOOLS: "dict[str, tuple[str | None, dict[str, str]]]" = {
    **dict.fromkeys(
        (
            "mysql",
            "mysqldump",
            "mysqladmin",
            "mysqlimport",
            "mysqlcheck",
            "mysqlshow",
            "mysqlpump",
            "mysqlsh",
            "mariadb",
            "mariadb-dump",
            "mariadb-admin",
            "mongo",
            "mongosh",
            "mongodump",
            "mongorestore",
            "mongoexport",
            "mongoimport",
            "mongostat",
            "mongotop",
            "mongofiles",
            "twine",
        ),
        _DASH_P,
    ),
    **dict.fromkeys(("docker", "podman", "nerdctl", "buildah", "skopeo", "helm", "oras", "az"), _LOGIN),
    "redis-cli": (None, {"-a": _V}),
    "curl": (None, {"-u": _USERINFO, "--user": _USERINFO, "-U": _USERINFO, "--proxy-user": _USERINFO, "-b": _V}),
    "sshpass": (None, {"-p": _END}),
    "gh": ("secret", {"-b": _V, "--body": _V}),
    "openssl": (None, {"-passin": _V, "-passout": _V, "-pass": _V, "-k": _V}),
    "keytool": (None, {"-storepass": _V, "-keypass": _V, "-srcstorepass": _V, "-deststorepass": _V}),
    "ldapsearch": (None, {"-w": _V}),
}
_LAUNCHERS = frozenset({"sudo", "doas", "env", "exec", "run", "--", "xargs", "nohup", "time", "nice", "timeout"})
"""Words after which a tool's name is a command (``docker exec -it db mysql -pX``), not just a word."""
_OPTION_HINTS = (
    "config",
    *sorted({" " + (flag if flag.startswith("--") else flag[:2]) for _, table in _TOOLS.values() for flag in table}),
)
"""What a text holds if one of the tools' password options may be in it (a quick test)."""
_CONFIG_WORDS = frozenset({"config", "configure"})
"""``npm config set NAME VALUE``, ``aws configure set NAME VALUE``, ``git config NAME VALUE``."""
_CONFIG_VERBS = frozenset({"set", "get", "unset", "delete", "add", "list"})
_CONFIG_VERB_PREFIXES = ("set-", "get-", "delete-", "use-")
"""Words after ``config`` that are not a setting's name (``kubectl config set-credentials NAME``)."""
_COMMAND_ENDS = frozenset({"", ";", "&&", "||", "|", "&", "(", ")", "{", "}", "then", "do", "else"})
"""Words that end a command in a script ("": a newline, see :func:`_shell_words`)."""

_MIN_KNOWN_SECRET = 8
_CACHE_MAX = 8192  # distinct texts remembered (attribute values repeat: methods, hosts, routes)
_CACHE_TEXT_MAX = 2048
_name_cache: "dict[str, bool]" = {}
_text_cache: "dict[str, str]" = {}
_known_secrets: "list[str]" = []
_seen_environment: "dict[str, str]" = {}  # name -> value already looked at


# ---------------------------------------------------------------- the API


def is_secret_name(name: str) -> bool:
    """Tell whether a name (environment variable, flag, header, attribute key,
    query parameter) holds a credential.

    Names are split into segments on ``_ - . /`` and spaces; ``MY_API_KEY``,
    ``x-auth-token``, ``--password``, ``DB_PASS``, ``MYSQL_PWD``, ``SESSION``,
    ``http.request.header.authorization`` are secret; ``max_tokens``,
    ``gen_ai.usage.input_tokens``, ``monkey``, ``PWD``, ``session.id`` are not.
    """
    cached = _name_cache.get(name)
    if cached is not None:
        return cached
    lowered = name.lower().lstrip("-")
    for sep in "-./ ":
        lowered = lowered.replace(sep, "_")
    segments = [s for s in lowered.split("_") if s]
    secret = False
    if lowered not in _HARMLESS_NAMES:
        for seg in segments:
            if seg in _SECRET_SEGMENTS or seg.endswith(_SECRET_SUFFIXES):
                secret = True
                break
        else:
            secret = bool(segments) and segments[-1] in _SECRET_LAST_SEGMENTS
    if len(_name_cache) < 4096:
        _name_cache[name] = secret
    return secret


def remember_environment(environ: "Mapping[str, str]") -> bool:
    """Learn the values of credential-named variables (and the passwords in
    URL-valued ones, the credentials in ``…HEADERS``), to redact them anywhere.

    Cheap when called again with much the same environment (each child's):
    only variables not seen before with that value are looked at. Returns
    whether a new secret was learned (what was redacted before may then
    differ)."""
    seen = _seen_environment
    learned = False
    for name, value in environ.items():
        if seen.get(name) == value or len(value) < _MIN_KNOWN_SECRET:
            continue
        if len(seen) < 4096:
            seen[name] = value
        for secret in _secrets_of_variable(name, value):
            if len(secret) >= _MIN_KNOWN_SECRET and secret not in _known_secrets:
                _known_secrets.append(secret)
                learned = True
    if learned:
        _known_secrets.sort(key=len, reverse=True)
        _text_cache.clear()
    return learned


def redact_text(text: str) -> str:
    """Remove credentials found anywhere in a free text (a shell command line,
    an exception message, a URL, a header value, a label)."""
    if len(text) < 8:
        return text
    cached = _text_cache.get(text)
    if cached is not None:
        return cached
    out = text
    for secret in _known_secrets:
        if secret in out:
            out = out.replace(secret, REDACTED)
    if _PRIVATE_KEY in out:
        out = _redact_private_keys(out)
    if "://" in out:
        out = _redact_urls(out)
    if "=" in out or ": " in out or ":'" in out or ':"' in out:
        out = _redact_assignments(out)
    if "--" in out:
        out = _redact_flags(out)
    if " " in out and (" -" in out or "config" in out):
        out = _redact_command_text(out)
    out = _redact_key_shapes(out)
    if " " in out:
        out = _redact_auth_schemes(out)
    if len(text) <= _CACHE_TEXT_MAX:
        if len(_text_cache) >= _CACHE_MAX:
            _text_cache.clear()
        _text_cache[text] = out
    return out


def redact_value(key: str, value: str) -> str:
    """Redact one string attribute: the whole value when the key names a
    credential, otherwise whatever :func:`redact_text` finds in it."""
    if is_secret_name(key):
        return REDACTED
    return redact_text(value)


def redact_args(args: "Sequence[str]") -> "list[str]":
    """Redact a command line: ``--api-key VALUE``, ``--token=VALUE``, the
    password options of common tools (``mysql -pX``, ``curl -u user:X``, …),
    ``NAME=VALUE`` arguments (``env``, ``docker -e``) and whatever
    :func:`redact_text` finds inside any argument (for example in ``sh -c "…"``
    scripts)."""
    words = list(args)
    changes = _scan_command(words)
    return [REDACTED if changes.get(i) == REDACTED else redact_text(changes.get(i, w)) for i, w in enumerate(words)]


# ---------------------------------------------------------------- command lines


def _scan_command(words: "Sequence[str]") -> "dict[int, str]":
    """The words of a command line (or of the commands in a script) that change,
    by position: values of credential-named options, of the tools' password
    options, and of ``config set NAME VALUE`` for a credential NAME.

    A tool's name counts as a command only as a command's first word (after
    ``VAR=value`` words) or after a launcher (``sudo``, ``docker exec … db``,
    ``kubectl exec … --``): ``pytest -k mysql -p no:x`` is no mysql command."""
    changes: dict[int, str] = {}
    flags: "dict[str, str] | None" = None  # the current tool's options, once they apply
    waiting: "tuple[str, dict[str, str]] | None" = None  # (sub-command, options) not applying yet
    pending = ""  # the kind of value the next word is ("s" any word: a long option's)
    words_in = 0  # words of the current command that are not options
    launched = False  # the command runs another one
    configuring = False  # after ``TOOL config``: the next non-verb word is a setting's name
    for i, word in enumerate(words):
        if word in _COMMAND_ENDS:
            flags, waiting, pending, words_in, launched, configuring = None, None, "", 0, False, False
            continue
        if pending:
            hiding, pending = pending, ""
            if hiding == "s" or not word.startswith("-"):
                changes[i] = _hide(hiding, word)
                if hiding == _END:  # the rest is a command of its own
                    flags, waiting, words_in, launched = None, None, 0, False
                continue
        if word.startswith("-") and len(word) > 1:
            name, eq, value = word.partition("=")
            kind = flags.get(name, "") if flags is not None else ""
            if kind:
                if eq:
                    changes[i] = name + "=" + _hide(kind, value)
                else:
                    pending = kind
            elif flags is not None and len(word) > 2 and word[1] != "-" and word[:2] in flags:  # glued: -pSECRET
                changes[i] = word[:2] + _hide(flags[word[:2]], word[2:])
            elif len(name) > 2 and is_secret_name(name) and not name.endswith("stdin"):
                if eq:
                    changes[i] = name + "=" + REDACTED
                else:
                    pending = "s"
            continue
        if words_in == 0 and "=" in word:  # VAR=value before the command
            continue
        words_in += 1
        spec = _TOOLS.get(word.rpartition("/")[2]) if words_in == 1 or launched else None
        if spec is not None:
            needed, table = spec
            flags, waiting = (table, None) if needed is None else (None, (needed, table))
            words_in, configuring = 1, False
        elif waiting is not None and word == waiting[0]:
            flags, waiting = waiting[1], None
        elif word in _LAUNCHERS:
            launched = True
        elif word in _CONFIG_WORDS and words_in == 2:
            configuring = True
        elif configuring and word not in _CONFIG_VERBS and not word.startswith(_CONFIG_VERB_PREFIXES):
            configuring = False  # the setting's name: its value is next
            if "=" not in word and is_secret_name(word):
                pending = _V
    return changes


def _hide(kind: str, value: str) -> str:
    if kind == _USERINFO:
        user, colon, password = value.partition(":")
        return user + ":" + REDACTED if colon and password else value
    return REDACTED


def _redact_command_text(text: str) -> str:
    """The tools' password options inside a shell script or a logged command line."""
    for hint in _OPTION_HINTS:
        if hint in text:
            break
    else:
        return text
    spans = _shell_words(text)
    words = []
    for start, end in spans:
        word = text[start:end]
        if len(word) >= 2 and word[0] in "\"'" and word[-1] == word[0]:
            word = word[1:-1]
        words.append(word)
    changes = _scan_command(words)
    if not changes:
        return text
    out = []
    last = 0
    for i, new in sorted(changes.items()):
        start, end = spans[i]
        if text[start] in "\"'" and end - start >= 2 and text[end - 1] == text[start]:
            start, end = start + 1, end - 1
        out.append(text[last:start])
        out.append(new)
        last = end
    out.append(text[last:])
    return "".join(out)


def _shell_words(text: str) -> "list[tuple[int, int]]":
    """Where the words of a shell text are (quotes kept in them); a newline or a
    trailing ``;`` ends a command and counts as a word ``;``."""
    spans: list[tuple[int, int]] = []
    n = len(text)
    i = 0
    while i < n:
        if text[i] in " \t\r\n":
            if text[i] == "\n":
                spans.append((i, i))  # an empty word: a command end (never changed)
            i += 1
            continue
        start = i
        quote = ""
        while i < n:
            c = text[i]
            if quote:
                if c == quote:
                    quote = ""
            elif c in "\"'":
                quote = c
            elif c in " \t\r\n":
                break
            i += 1
        end = i
        if end - start > 1 and text[end - 1] == ";":
            spans.append((start, end - 1))
            spans.append((end - 1, end))
        else:
            spans.append((start, end))
    return spans


# ---------------------------------------------------------------- environments


def _secrets_of_variable(name: str, value: str) -> "list[str]":
    if is_secret_name(name):
        return [value]
    found = []
    if "://" in value and "@" in value:
        for part in value.split("://")[1:]:
            userinfo = part.split("/", 1)[0].rpartition("@")[0]
            password = userinfo.partition(":")[2]
            if password:
                found.append(password)
    if name.upper().endswith("HEADERS"):  # OTEL_EXPORTER_OTLP_HEADERS: k=v,k2=v2 (percent-encoded)
        for item in value.split(","):
            key, eq, header = item.partition("=")
            if eq and is_secret_name(key.strip()):
                header = header.strip().replace("%20", " ")
                found.append(header)
                found.append(header.rpartition(" ")[2])
    return found


# ---------------------------------------------------------------- text helpers


def _redact_flags(text: str) -> str:
    """``--password VALUE`` inside a text (a shell script, a logged command)."""
    pos = text.find("--")
    while pos != -1:
        name_end = pos + 2
        while name_end < len(text) and text[name_end] in _WORD:
            name_end += 1
        name = text[pos:name_end]
        if (
            name_end < len(text)
            and text[name_end] == " "
            and len(name) > 2
            and is_secret_name(name)
            and not name.endswith("stdin")
        ):
            start = name_end + 1
            while start < len(text) and text[start] == " ":
                start += 1
            quoted = start < len(text) and text[start] in "\"'"
            if quoted:
                start += 1
            end = start
            while end < len(text) and text[end] not in (_VALUE_END if not quoted else "\"'"):
                end += 1
            if end > start:
                text = text[:start] + REDACTED + text[end:]
                name_end = start + len(REDACTED)
        pos = text.find("--", name_end)
    return text


def _redact_key_shapes(text: str) -> str:
    if len(text) < _SHORTEST_KEY:
        return text
    for prefix, min_rest, chars in _KEY_SHAPES:
        if prefix in text:
            text = _redact_prefixed(text, prefix, min_rest, chars)
    if _JWT in text:
        text = _redact_jwts(text)
    return text


def _redact_prefixed(text: str, prefix: str, min_rest: int, chars: "frozenset[str]") -> str:
    start = text.find(prefix)
    while start != -1:
        if start > 0 and text[start - 1] in _TOKEN_CHARS and text[start - 1] not in "-_":
            start = text.find(prefix, start + 1)
            continue
        end = start + len(prefix)
        while end < len(text) and text[end] in chars:
            end += 1
        if end - start - len(prefix) >= min_rest:
            text = text[:start] + REDACTED + text[end:]
            end = start + len(REDACTED)
        start = text.find(prefix, end)
    return text


def _redact_jwts(text: str) -> str:
    """``eyJ….….…``: three (a JWE: five) base64url parts, the last may be empty."""
    start = text.find(_JWT)
    while start != -1:
        if start > 0 and text[start - 1] in _TOKEN_CHARS:
            start = text.find(_JWT, start + 1)
            continue
        end = start
        parts = []
        while True:
            part_start = end
            while end < len(text) and text[end] in _TOKEN_CHARS:
                end += 1
            parts.append(end - part_start)
            if end < len(text) and text[end] == "." and len(parts) < 5:
                end += 1
                continue
            break
        if len(parts) >= 3 and parts[0] >= 10 and parts[1] >= 2:
            text = text[:start] + REDACTED + text[end:]
            end = start + len(REDACTED)
        start = text.find(_JWT, max(end, start + 1))
    return text


def _redact_private_keys(text: str) -> str:
    """``-----BEGIN … PRIVATE KEY-----`` up to its ``-----END`` (or the end of the text)."""
    pos = text.find("-----BEGIN ")
    while pos != -1:
        header_end = text.find("-----", pos + 11)
        if header_end == -1:
            break
        header_end += 5
        if _PRIVATE_KEY not in text[pos:header_end]:
            pos = text.find("-----BEGIN ", header_end)
            continue
        end = text.find("-----END", header_end)
        if end == -1:
            end = len(text)
        text = text[:header_end] + REDACTED + text[end:]
        pos = text.find("-----BEGIN ", header_end + len(REDACTED))
    return text


def _redact_auth_schemes(text: str) -> str:
    lowered = text.lower()
    for scheme in _AUTH_SCHEMES:
        idx = lowered.find(scheme)
        while idx != -1:
            if idx > 0 and lowered[idx - 1].isalnum():
                idx = lowered.find(scheme, idx + 1)
                continue
            start = idx + len(scheme)
            while start < len(text) and text[start] == " ":
                start += 1
            end = start
            while end < len(text) and text[end] not in _VALUE_END:
                end += 1
            # "token " and "basic " are common words: only redact token-like values.
            if end - start >= 8 and (scheme == "bearer " or _looks_like_token(text[start:end])):
                text = text[:start] + REDACTED + text[end:]
                lowered = text.lower()
                end = start + len(REDACTED)
            idx = lowered.find(scheme, end)
    return text


def _looks_like_token(value: str) -> bool:
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    return has_digit and has_alpha and " " not in value


def _redact_assignments(text: str) -> str:
    """``NAME=value``, ``NAME: value``, ``"name": "value"`` with a secret NAME."""
    pos = 0
    n = len(text)
    while pos < n:
        eq = _next_separator(text, pos)
        if eq == -1:
            break
        sep = text[eq]
        # name: identifier characters before the separator (skipping one quote)
        name_end = eq
        if name_end > 0 and text[name_end - 1] in "\"'":
            name_end -= 1
        name_start = name_end
        while name_start > 0 and text[name_start - 1] in _WORD:
            name_start -= 1
        name = text[name_start:name_end]
        value_start = eq + 1
        if sep == ":" and (value_start >= n or text[value_start] not in " \"'"):
            pos = eq + 1
            continue
        while value_start < n and text[value_start] == " ":
            value_start += 1
        if value_start < n and text[value_start] in "\"'":
            value_start += 1
        value_end = value_start
        if sep == ":":
            # header style: the value runs to the end of the line or quote
            while value_end < n and text[value_end] not in "\r\n\"'":
                value_end += 1
        else:
            while value_end < n and text[value_end] not in _VALUE_END:
                value_end += 1
        if name and value_end > value_start and is_secret_name(name):
            text = text[:value_start] + REDACTED + text[value_end:]
            n = len(text)
            pos = value_start + len(REDACTED)
        else:
            pos = eq + 1
    return text


def _next_separator(text: str, pos: int) -> int:
    eq = text.find("=", pos)
    colon = text.find(":", pos)
    if eq == -1:
        return colon
    if colon == -1:
        return eq
    return min(eq, colon)


def _redact_urls(text: str) -> str:
    if "@" not in text and "?" not in text:
        for hint in _WEBHOOK_HINTS:
            if hint in text:
                break
        else:
            return text
    out = []
    pos = 0
    while True:
        idx = text.find("://", pos)
        if idx == -1:
            out.append(text[pos:])
            break
        start = idx
        while start > pos and (text[start - 1].isalnum() or text[start - 1] in "+.-"):
            start -= 1
        end = idx + 3
        while end < len(text) and text[end] not in " \t\r\n\"'<>`":
            end += 1
        out.append(text[pos:start])
        out.append(_redact_url(text[start:end]))
        pos = end
    return "".join(out)


def _redact_url(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority_end = len(rest)
    for ch in "/?#":
        i = rest.find(ch)
        if i != -1 and i < authority_end:
            authority_end = i
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        authority = "REDACTED:REDACTED@" + authority.rpartition("@")[2]
    host = authority.rpartition("@")[2].partition(":")[0].lower()
    for hint in _WEBHOOK_HINTS:
        if hint in host:
            tail = _redact_webhook_path(host, tail)
            break
    if "?" in tail:
        path, _, query = tail.partition("?")
        query, hash_sep, fragment = query.partition("#")
        params = []
        for part in query.split("&"):
            key, eq, _value = part.partition("=")
            if eq and (key.lower() in _URL_QUERY_ALWAYS or is_secret_name(key)):
                part = key + "=" + REDACTED
            params.append(part)
        tail = path + "?" + "&".join(params) + hash_sep + fragment
    return scheme + "://" + authority + tail


def _redact_webhook_path(host: str, tail: str) -> str:
    """A webhook URL's path after its known prefix is the credential."""
    for webhook_host, prefix in _WEBHOOKS:
        if (host == webhook_host or host.endswith("." + webhook_host)) and tail.startswith(prefix):
            path_end = len(tail)
            for ch in "?#":
                i = tail.find(ch)
                if i != -1 and i < path_end:
                    path_end = i
            if path_end > len(prefix):
                return tail[: len(prefix)] + REDACTED + tail[path_end:]
    return tail
