"""Redaction of credentials before anything is written.

Every value that leaves a traced process passes through here first: command
arguments, span and event attributes, URLs. What is removed:

* values of names that carry credentials (``Authorization``, ``*_API_KEY``,
  ``*TOKEN``, ``*SECRET*``, ``*PASSWORD*``, cookies, ``--api-key VALUE``,
  ``NAME=VALUE`` and ``Name: value`` pairs inside a longer text);
* well-known key shapes anywhere in a text: codeflash ``cf-…``, OpenAI ``sk-…``,
  GitHub ``ghp_…``/``github_pat_…``, Slack ``xox?-…``, GitLab ``glpat-…``,
  Hugging Face ``hf_…``, AWS ``AKIA…``;
* ``Bearer``/``Basic``/``Token`` credentials;
* URL user-info and query parameters with a credential name (and the ones the
  HTTP semantic conventions list: ``AWSAccessKeyId``, ``Signature``, ``sig``,
  ``X-Goog-Signature``);
* the values of the process's environment variables that have a credential
  name (:func:`remember_environment`), wherever they turn up (an exception
  message that quotes a token, a URL built from one).

The replacement is ``REDACTED``, as in the semantic conventions' ``url.full``.
This module is loaded by the bootstrap of every traced process, so it uses only
``str`` methods (no ``re``, which alone costs milliseconds to import).
"""

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

REDACTED = "REDACTED"

# Shapes of keys recognised anywhere in a text: prefix -> minimum length of the rest.
_KEY_PREFIXES = (
    ("sk-", 16),
    ("cf-", 16),
    ("ghp_", 20),
    ("gho_", 20),
    ("ghs_", 20),
    ("ghu_", 20),
    ("github_pat_", 20),
    ("xoxb-", 10),
    ("xoxp-", 10),
    ("xoxa-", 10),
    ("glpat-", 16),
    ("hf_", 20),
    ("AKIA", 16),
)
_AUTH_SCHEMES = ("bearer ", "basic ", "token ", "digest ")
_URL_QUERY_ALWAYS = frozenset({"awsaccesskeyid", "signature", "sig", "x-goog-signature"})

_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
_TOKEN_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
_VALUE_END = frozenset(" \t\r\n\"'`,;&)}]>")

_SECRET_SEGMENTS = frozenset(
    {
        "token",
        "secret",
        "password",
        "passwd",
        "passphrase",
        "credential",
        "credentials",
        "authorization",
        "auth",
        "cookie",
        "apikey",
        "key",
        "signature",
    }
)
_SECRET_SUFFIXES = ("token", "secret", "password", "apikey", "passwd")
_MIN_KNOWN_SECRET = 8
_CACHE_MAX = 8192  # distinct texts remembered (attribute values repeat: methods, hosts, routes)
_CACHE_TEXT_MAX = 2048
_name_cache: "dict[str, bool]" = {}
_text_cache: "dict[str, str]" = {}
_known_secrets: "list[str]" = []


def is_secret_name(name: str) -> bool:
    """Tell whether a name (environment variable, flag, header, attribute key,
    query parameter) holds a credential.

    Names are split into segments on ``_ - . /`` and spaces; ``MY_API_KEY``,
    ``x-auth-token``, ``--password``, ``http.request.header.authorization`` are
    secret; ``max_tokens``, ``gen_ai.usage.input_tokens``, ``monkey`` are not.
    """
    cached = _name_cache.get(name)
    if cached is not None:
        return cached
    lowered = name.lower().lstrip("-")
    for sep in "-./ ":
        lowered = lowered.replace(sep, "_")
    segments = [s for s in lowered.split("_") if s]
    secret = False
    for seg in segments:
        if seg in _SECRET_SEGMENTS or seg.endswith(_SECRET_SUFFIXES):
            secret = True
            break
    if len(_name_cache) < 4096:
        _name_cache[name] = secret
    return secret


def remember_environment(environ: "Mapping[str, str]") -> None:
    """Learn the values of credential-named variables, to redact them anywhere."""
    for name, value in environ.items():
        if len(value) >= _MIN_KNOWN_SECRET and is_secret_name(name) and value not in _known_secrets:
            _known_secrets.append(value)
    _known_secrets.sort(key=len, reverse=True)
    _text_cache.clear()


def redact_text(text: str) -> str:
    """Remove credentials found anywhere in a free text (a shell command line,
    an exception message, a URL, a header value)."""
    if len(text) < 8:
        return text
    cached = _text_cache.get(text)
    if cached is not None:
        return cached
    out = text
    for secret in _known_secrets:
        if secret in out:
            out = out.replace(secret, REDACTED)
    if "://" in out and ("@" in out or "?" in out):
        out = _redact_urls(out)
    if "=" in out or ": " in out or ":'" in out or ':"' in out:
        out = _redact_assignments(out)
    if "--" in out:
        out = _redact_flags(out)
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


def redact_args(args: "list[str] | tuple[str, ...]") -> "list[str]":
    """Redact a command line: ``--api-key VALUE``, ``--token=VALUE``,
    ``NAME=VALUE`` arguments (``env``, ``docker -e``) and key shapes inside any
    argument (for example in ``sh -c "…"`` scripts)."""
    out: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg.startswith("-") and len(arg) > 2:
            name, eq, _ = arg.partition("=")
            if is_secret_name(name):
                if eq:
                    out.append(name + "=" + REDACTED)
                else:
                    hide_next = True
                    out.append(arg)
                continue
        out.append(redact_text(arg))
    return out


# ---------------------------------------------------------------- helpers


def _redact_flags(text: str) -> str:
    """``--password VALUE`` inside a text (a shell script, a logged command)."""
    pos = text.find("--")
    while pos != -1:
        name_end = pos + 2
        while name_end < len(text) and text[name_end] in _WORD:
            name_end += 1
        name = text[pos:name_end]
        if name_end < len(text) and text[name_end] == " " and len(name) > 2 and is_secret_name(name):
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
    for prefix, min_rest in _KEY_PREFIXES:
        if prefix not in text:
            continue
        start = text.find(prefix)
        while start != -1:
            if start > 0 and text[start - 1] in _TOKEN_CHARS and text[start - 1] not in "-_":
                start = text.find(prefix, start + 1)
                continue
            end = start + len(prefix)
            while end < len(text) and text[end] in _TOKEN_CHARS:
                end += 1
            if end - start - len(prefix) >= min_rest:
                text = text[:start] + REDACTED + text[end:]
                end = start + len(REDACTED)
            start = text.find(prefix, end)
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
