"""The flame graph page drawn by a real browser, and speedscope's file format checked against its schema."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import otel_run
from otel_run.render._flame import flame_html, speedscope
from tests.conftest import PYTHON, WALRUS_SPIN, Runner

HERE = Path(__file__).resolve().parent
# speedscope's own schema, from its npm package (see speedscope-file-format-schema.LICENSE)
SCHEMA = HERE / "speedscope-file-format-schema.json"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs chromium: run `sudo make tools` (or apt-get install -y chromium)"
)

SPIN = WALRUS_SPIN + "walrus_spin(1.0)\n"

# otel-trace reads the package this suite imports (a work tree's, when the venv's editable install is another's)
SAME_PACKAGE = {"PYTHONPATH": str(Path(otel_run.__file__).resolve().parents[1])}

# a frame as the page's script creates it: <div class="frame…" data-i="N" style="…">label</div>
FRAME = re.compile(r'<div class="(frame[^"]*)" data-i="\d+" style="([^"]*)">([^<]*)</div>')


@pytest.fixture(scope="module")
def profiled(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    """One real ``otel-run --profile cpu`` run of a program that spins in ``walrus_spin`` for 1 s."""
    tmp = tmp_path_factory.mktemp("flame")
    (tmp / "spin.py").write_text(SPIN)
    runner = Runner(tmp / "store")
    result = runner.run("--profile", "cpu", "--", PYTHON, str(tmp / "spin.py"))
    assert result.returncode == 0, result.stderr
    return runner


def _dump_dom(page: Path, tmp_path: Path, fragment: str = "") -> str:
    """The DOM of ``page`` (at ``fragment``) once loaded in headless chromium, serialised."""
    assert CHROMIUM is not None
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=1200,700",
            "--dump-dom",
            page.as_uri() + fragment,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _frames(dom: str) -> list[tuple[str, str, str]]:
    """(class, style, label) of each frame element in a dumped DOM."""
    return [(cls, style, html.unescape(text)) for cls, style, text in FRAME.findall(dom)]


def _width(style: str) -> float:
    found = re.search(r"width: ([\d.]+)%", style)
    assert found, style
    return float(found.group(1))


@needs_chromium
def test_the_page_of_a_real_cpu_profile_draws_the_hot_function(profiled: Runner, tmp_path: Path) -> None:
    page = tmp_path / "flame.html"
    made = profiled.trace_cli("profile", "--format", "html", "-o", str(page), env=profiled.env(**SAME_PACKAGE))
    assert made.returncode == 0, made.stderr
    text = page.read_text()
    assert "walrus_spin" in text and '<div class="frame' not in text  # the frames are the script's, not the file's
    assert not re.search(r"\b(src|href)\s*=|url\(|@import|https?://", text)  # nothing loaded from outside
    assert len(text) < 20_000

    frames = _frames(_dump_dom(page, tmp_path))
    assert frames, "the page's script drew no frame"
    assert frames[0][2] == "all" and _width(frames[0][1]) == 100
    spins = [(style, label) for _, style, label in frames if label.startswith("walrus_spin (")]
    assert spins, [label for *_, label in frames]
    assert sum(_width(style) for style, _ in spins) >= 70  # the spin is most of the run's samples
    assert all(label.endswith("spin.py)") for _, label in spins)


# Run after the page's own script: hover, click and search as a person would, then say what the page showed.
DRIVER = """<script>
(()=>{const frames=()=>[...document.querySelectorAll('#g .frame')];
const find=name=>frames().find(e=>e.textContent.startsWith(name));const out={};
find('walrus_spin').dispatchEvent(new MouseEvent('mousemove',{bubbles:true,clientX:20,clientY:20}));
out.tip=document.getElementById('tip').textContent;
out.colours=[find('walrus_spin').style.background,find('other').style.background];
find('walrus_spin').click();
out.zoomed=frames().map(e=>[e.textContent,e.style.width,e.className]);
const q=document.getElementById('q');q.value='OTHER';q.dispatchEvent(new Event('input'));
out.hitsZoomed=frames().filter(e=>e.classList.contains('hit')).length;
document.getElementById('reset').click();q.dispatchEvent(new Event('input'));
out.hits=frames().filter(e=>e.classList.contains('hit')).map(e=>e.textContent);
out.match=document.getElementById('match').textContent;
document.body.dataset.result=JSON.stringify(out)})();
</script></body>"""


@needs_chromium
def test_hover_tells_value_and_share_a_click_zooms_search_highlights(tmp_path: Path) -> None:
    stacks = [
        (("svc", "main (app/main.py)", "walrus_spin (app/spin.py)"), 75),
        (("svc", "main (app/main.py)", "other (lib/other.py)"), 25),
    ]
    page = tmp_path / "flame.html"
    page.write_text(flame_html(stacks, "cpu", "samples").replace("</body>", DRIVER))
    dom = _dump_dom(page, tmp_path)
    found = re.search(r'data-result="([^"]*)"', dom)
    assert found, dom[-3000:]
    out: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    assert out["tip"].splitlines()[:2] == ["walrus_spin (app/spin.py)", "75 samples · 75.0% of total"]
    assert "self 75 samples (75.0%)" in out["tip"] and "package app" in out["tip"]
    assert out["colours"][0] != out["colours"][1]  # app and lib are told apart
    zoomed = {label: (width, cls) for label, width, cls in out["zoomed"]}
    assert zoomed["walrus_spin (app/spin.py)"] == ("100%", "frame")  # the clicked frame fills the width
    assert zoomed["main (app/main.py)"] == ("100%", "frame anc")  # its ancestors stay, to zoom back out
    assert "other (lib/other.py)" not in zoomed
    assert out["hitsZoomed"] == 0
    assert out["hits"] == ["other (lib/other.py)"] and out["match"] == "matched 25 samples (25.0%)"


@needs_chromium
def test_a_search_in_the_address_is_highlighted_when_the_page_opens(tmp_path: Path) -> None:
    stacks = [
        (("svc", "main (app/main.py)", "walrus_spin (app/spin.py)"), 75),
        (("svc", "main (app/main.py)", "other (lib/other.py)"), 25),
    ]
    page = tmp_path / "flame.html"
    page.write_text(flame_html(stacks, "cpu", "samples"))
    dom = _dump_dom(page, tmp_path, fragment="#search=OTHER")
    hits = [label for cls, _, label in _frames(dom) if "hit" in cls.split()]
    assert hits == ["other (lib/other.py)"]
    assert '<span id="match">matched 25 samples (25.0%)</span>' in dom
    assert not [cls for cls, *_ in _frames(_dump_dom(page, tmp_path)) if "hit" in cls.split()]  # none without it


HOSTILE = '</script><script>document.body.dataset.pwned=1</script><img src=x onerror="document.body.dataset.pwned=2">'


def test_a_label_or_title_with_markup_stays_text() -> None:
    page = flame_html([(("svc", HOSTILE), 3)], '<b id="t">title</b>', "samples")
    assert page.count("</script>") == 2  # the page's own two: the data cannot close its script element
    assert "<img" not in page and '<b id="t">' not in page


@needs_chromium
def test_a_label_with_markup_is_drawn_as_its_text(tmp_path: Path) -> None:
    page = tmp_path / "flame.html"
    page.write_text(flame_html([(("svc", HOSTILE), 3), (("svc", "ok\u2028line"), 1)], "<b>t</b>", "samples"))
    dom = _dump_dom(page, tmp_path)
    assert not re.search(r"<body[^>]*pwned", dom) and "<img" not in dom  # no injected script ran, no element made
    assert HOSTILE in [label for *_, label in _frames(dom)]


def test_a_title_or_label_naming_a_slot_of_the_page_is_only_text() -> None:
    page = flame_html([(("svc", "__TITLE__ __DATA__"), 1)], "span __DATA__ \\ x", "samples")
    assert page.count('"nodes":') == 1 and "<title>span __DATA__ \\ x</title>" in page
    data = json.loads(page.split('type="application/json">')[1].split("</script>")[0])
    assert data["names"][-1] == "__TITLE__ __DATA__" and data["title"] == "span __DATA__ \\ x"


def test_an_empty_profile_is_a_page_that_says_so() -> None:
    page = flame_html([], "cpu", "samples")
    assert "no samples" in page and '"nodes":[0,0,0]' in page


def test_a_deep_stack_is_no_recursion() -> None:
    stack = tuple(f"f{i} (m/x.py)" for i in range(5000))
    page = flame_html([(stack, 1)], "deep", "samples")
    assert "f4999 (m/x.py)" in page


# ------------------------------------------------------------- speedscope


def _check_speedscope(data: dict[str, Any]) -> None:
    """``data`` is valid for speedscope's schema, and what the schema cannot say holds too."""
    jsonschema.Draft7Validator.check_schema(json.loads(SCHEMA.read_text()))
    jsonschema.validate(data, json.loads(SCHEMA.read_text()), cls=jsonschema.Draft7Validator)
    assert data["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    frames = data["shared"]["frames"]
    for profile in data["profiles"]:
        assert profile["type"] == "sampled"
        assert len(profile["samples"]) == len(profile["weights"])
        assert all(0 <= i < len(frames) for sample in profile["samples"] for i in sample)
        assert profile["startValue"] <= profile["endValue"] == profile["startValue"] + sum(profile["weights"])


def test_speedscope_of_a_real_cpu_profile_fits_speedscopes_schema(profiled: Runner, tmp_path: Path) -> None:
    out = tmp_path / "run.speedscope.json"
    made = profiled.trace_cli("profile", "--format", "speedscope", "-o", str(out), env=profiled.env(**SAME_PACKAGE))
    assert made.returncode == 0, made.stderr
    data = json.loads(out.read_text())
    _check_speedscope(data)
    [profile] = data["profiles"]
    names = [f["name"] for f in data["shared"]["frames"]]
    spin = [
        w
        for s, w in zip(profile["samples"], profile["weights"], strict=True)
        if names[s[-1]].startswith("walrus_spin (")
    ]
    assert sum(spin) >= 0.7 * sum(profile["weights"]) > 0


def test_speedscope_of_bytes_fits_the_schema_and_a_bad_file_does_not() -> None:
    data = speedscope([(("svc", "alloc (app/a.py)"), 4096), (("svc", "alloc (app/a.py)", "deeper"), 10)], "m", "bytes")
    _check_speedscope(data)
    assert data["profiles"][0]["unit"] == "bytes"
    data["profiles"][0]["unit"] = "furlongs"  # the schema is not a rubber stamp
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, json.loads(SCHEMA.read_text()), cls=jsonschema.Draft7Validator)
