"""bench/case_study.py: codeflash 0.20.6 untouched and patched, measured with otel-run (issue 14).

    python bench/case_study.py setup                    # one venv per variant under --work
    python bench/case_study.py measure [--rounds N]     # (a) codeflash --version, (b) pytest --co, (c) optimize
    python bench/case_study.py rtt [--rtt MS]           # (c) behind an emulated RTT (otel-demo --rtt)
    python bench/case_study.py profile [--rounds N]     # optimize with --profile cpu,imports: functions, flame graphs
    python bench/case_study.py flames                   # flame graphs (html, png) of untouched and all
    python bench/case_study.py report                   # span-diffs -> results/case_study/

A *variant* is a venv with codeflash 0.20.6 and codeflash-benchmark 0.3.0 installed from one
wheelhouse (so every venv has the same dependencies, byte for byte), with some of
``bench/patches/*.patch`` applied to its site-packages (``patch -p1 -d SITE_PACKAGES``) and its
byte code compiled, so no side pays a compile the other does not: ``untouched`` (none), ``0001`` …
(one patch each) and ``all``.

Measurements run every variant in the same round, in an order that rotates from round to round, so
drift of this shared machine hits all of them alike. Each measured command is an ``otel-run`` series
(``--runs N --warmup W -l cs-VARIANT-WHAT``; the optimize run is one ``otel-demo`` per round, as
codeflash rewrites the project it optimizes and needs a fresh copy each time, with one warm-up round
labelled ``cs-warmup-…``). ``report`` runs ``span-diff untouched → variant`` for each measurement, in
Markdown (as posted on a PR) and JSON, and writes the end-to-end table ``results/case_study/e2e.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PATCHES = ROOT / "bench" / "patches"
FIXTURE = ROOT / "bench" / "fixture"
RESULTS = ROOT / "results" / "case_study"
BIN = Path(sys.executable).parent
# pytest 9 removed the Item._nodeid that codeflash 0.20.6's pytest plugin sets: with it, every test
# run of an optimize ends in an INTERNALERROR and codeflash skips each function (exit 0). The
# project's own venv has pytest 8.4.2; so do the case study's.
PINS = ("codeflash==0.20.6", "codeflash-benchmark==0.3.0", "pytest==8.4.2")
MEASUREMENTS = ("version", "collect", "optimize")
TITLES = {
    "version": "`codeflash --version`",
    "collect": "`pytest --co -q tests/` in bench/fixture",
    "optimize": "`codeflash optimize foo.py` (otel-demo --latency-scale 0 --looping-time 1 --pypi)",
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/case_study.py", description=__doc__.split("\n")[0])
    parser.add_argument("phase", choices=("setup", "measure", "rtt", "profile", "flames", "report"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/otel-run-case-study"), help="venvs and wheelhouse")
    parser.add_argument("--store", type=Path, help="otel-run store (default: WORK/store)")
    parser.add_argument("--variants", help="comma-separated (default: untouched, each patch, all)")
    parser.add_argument("--only", default=",".join(MEASUREMENTS), help="measure: which of version,collect,optimize")
    parser.add_argument("--rounds", type=int, default=5, help="measure/rtt: interleaved rounds (default 5)")
    parser.add_argument("--runs", type=int, default=5, help="runs per round of version and collect (default 5)")
    parser.add_argument("--set", default="", help="measure: name of a second optimize set (labels ...-optimize-SET)")
    parser.add_argument("--rtt", type=float, default=50.0, help="rtt: emulated round-trip time, ms (default 50)")
    args = parser.parse_args(argv)
    store = args.store or args.work / "store"
    variants = args.variants.split(",") if args.variants else all_variants()
    env = clean_env()
    if args.phase == "setup":
        for name in variants:
            setup_variant(args.work, name, env)
    elif args.phase == "measure":
        measure(args.work, store, variants, args.only.split(","), args.rounds, args.runs, env, args.set)
    elif args.phase == "rtt":
        rtt_variants = args.variants.split(",") if args.variants else ["untouched", "0002", "all"]
        for round_no, name in rotated(rtt_variants, args.rounds + 1):
            label = f"cs-{name}-optimize-rtt{args.rtt:g}" if round_no else f"cs-warmup-{name}-rtt"
            optimize(args.work, store, name, label, env, "--rtt", f"{args.rtt:g}")
    elif args.phase == "profile":  # profiled runs apart from the timed ones: the profilers cost time
        for _, name in rotated(variants, args.rounds):
            optimize(args.work, store, name, f"cs-{name}-profile", env, "--profile", "cpu,imports")
    elif args.phase == "flames":
        flames(store)
    else:
        report(store, variants, args.rtt)
    return 0


# ----------------------------------------------------------------- variants


def all_variants() -> list[str]:
    return ["untouched", *(p.name[:4] for p in patches()), "all"]


def patches() -> list[Path]:
    return sorted(PATCHES.glob("[0-9][0-9][0-9][0-9]-*.patch"))


def patches_of(name: str) -> list[Path]:
    if name == "untouched":
        return []
    if name == "all":
        return patches()
    chosen = [p for p in patches() if p.name.startswith(name + "-")]
    if not chosen:
        raise SystemExit(f"case_study: no patch {name}-*.patch in {PATCHES}")
    return chosen


def venv(work: Path, name: str) -> Path:
    return work / f"venv-{name}"


def setup_variant(work: Path, name: str, env: dict[str, str]) -> None:
    """The variant's venv, made once (a marker holds the hash of its patches)."""
    chosen = patches_of(name)
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in chosen) + " ".join(PINS).encode()).hexdigest()[:16]
    target = venv(work, name)
    marker = target / ".case-study"
    if marker.exists() and marker.read_text() == digest:
        print(f"case_study: {name}: up to date ({target})")
        return
    wheels = work / f"wheels-{hashlib.sha256(' '.join(PINS).encode()).hexdigest()[:8]}"
    if not (wheels / ".done").exists():
        run([str(BIN / "python"), "-m", "pip", "download", "-q", "-d", str(wheels), *PINS], env)
        (wheels / ".done").touch()
    shutil.rmtree(target, ignore_errors=True)
    run([base_python(), "-m", "venv", str(target)], env)
    python = str(target / "bin" / "python")
    run([python, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheels), *PINS], env)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    for patch in chosen:
        run(["patch", "-p1", "--forward", "--quiet", "-d", site, "-i", str(patch)], env)
    run([python, "-m", "compileall", "-q", "-j", "0", site], env, check=False)  # some vendored files do not compile
    marker.write_text(digest)
    print(f"case_study: {name}: {target} with {', '.join(p.name for p in chosen) or 'no patch'}")


def base_python() -> str:
    """The interpreter our venv was made from (so every variant runs the same Python)."""
    base = Path(getattr(sys, "_base_executable", sys.executable))
    return str(base if base.exists() else Path(sys.base_prefix) / "bin" / "python3")


# ----------------------------------------------------------------- measure


def measure(
    work: Path,
    store: Path,
    variants: list[str],
    only: list[str],
    rounds: int,
    runs: int,
    env: dict[str, str],
    set_name: str = "",
) -> None:
    for what in only:
        if what not in MEASUREMENTS:
            raise SystemExit(f"case_study: --only: unknown measurement {what!r} (one of {', '.join(MEASUREMENTS)})")
    if "version" in only or "collect" in only:
        for round_no, name in rotated(variants, rounds):
            bin_dir = venv(work, name) / "bin"
            warmup = "1" if round_no == 0 else "0"
            if "version" in only:
                series(store, f"cs-{name}-version", [str(bin_dir / "codeflash"), "--version"], runs, warmup, env)
            if "collect" in only:
                command = [str(bin_dir / "python"), "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", "tests/"]
                series(store, f"cs-{name}-collect", command, runs, warmup, env, cwd=FIXTURE)
    if "optimize" in only:
        for round_no, name in rotated(variants, rounds + 1):
            label = f"cs-{name}-optimize{set_name and '-' + set_name}" if round_no else f"cs-warmup-{name}"
            optimize(work, store, name, label, env)


def series(
    store: Path, label: str, command: list[str], runs: int, warmup: str, env: dict[str, str], cwd: Path | None = None
) -> None:
    otel_run = [str(BIN / "otel-run"), "--store", str(store), "-q", "-l", label, "--runs", str(runs)]
    run([*otel_run, "--warmup", warmup, "--", *command], env, cwd=cwd)


def optimize(work: Path, store: Path, name: str, label: str, env: dict[str, str], *extra: str) -> None:
    codeflash = venv(work, name) / "bin" / "codeflash"
    demo = [str(BIN / "otel-demo"), "--store", str(store), "-q", "-l", label, "--codeflash", str(codeflash)]
    run([*demo, "--latency-scale", "0", "--looping-time", "1", "--pypi", *extra], env)


def rotated(variants: list[str], rounds: int) -> Iterator[tuple[int, str]]:
    """Every variant once per round, the order rotating by one each round."""
    for r in range(rounds):
        shift = r % len(variants)
        for name in variants[shift:] + variants[:shift]:
            yield r, name


# ----------------------------------------------------------------- report


def report(store: Path, variants: list[str], rtt: float) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows: list[str] = []
    comparisons = [(what, what) for what in MEASUREMENTS]
    comparisons += [("optimize-b", "optimize"), (f"optimize-rtt{rtt:g}", "optimize")]
    for suffix, what in comparisons:
        before = f"cs-untouched-{suffix}"
        for name in variants:
            after = f"cs-{name}-{suffix}"
            if name == "untouched" or not has_label(store, after):
                continue
            stem = f"{suffix}-{name}"
            diff(store, before, after, "md", RESULTS / f"{stem}.md")
            data = json.loads(diff(store, before, after, "json"))
            root = data["root"] or {}
            rows.append(e2e_row(suffix, name, root, data))
            if suffix in PAIRED and data["before"].get("runs") == data["after"].get("runs"):
                # the rounds interleave the sides: run i of each is one round, so they pair
                diff(store, before, after, "md", RESULTS / f"{stem}-paired.md", "--paired")
                paired = json.loads(diff(store, before, after, "json", None, "--paired"))
                rows.append(e2e_row(suffix, name, paired["root"] or {}, paired, paired=True))
            if what == "optimize" and suffix == what and has_label(store, f"cs-{name}-profile"):
                functions = RESULTS / f"{stem}-functions.md"
                diff(store, "cs-untouched-profile", f"cs-{name}-profile", "md", functions, "--functions")
    head = (
        "| command | variant | runs | before | after | change | 95% CI | p |\n|---|---|---:|---:|---:|---:|---:|---:|\n"
    )
    (RESULTS / "e2e.md").write_text(
        "# End to end: untouched → patched (median wall time of the command)\n\n"
        "Made by `python bench/case_study.py report` from the runs of `measure` and `rtt`.\n\n"
        + head
        + "\n".join(rows)
        + "\n"
    )
    print((RESULTS / "e2e.md").read_text())


def e2e_row(suffix: str, name: str, root: dict[str, object], data: dict[str, object], paired: bool = False) -> str:
    def ms(value: object) -> str:
        return f"{value:.1f} ms" if isinstance(value, (int, float)) else "–"

    def pct(value: object) -> str:
        return f"{value:+.1f}%" if isinstance(value, (int, float)) else "–"

    runs = f"{_count(data['before'])} + {_count(data['after'])}"
    change = pct(root.get("change_pct"))
    if root.get("significant"):
        change = f"**{change}**"
    ci = f"{pct(root.get('ci_low_pct'))} … {pct(root.get('ci_high_pct'))}"
    p = root.get("p_value")
    p_text = "<0.001" if isinstance(p, float) and p < 0.001 else (f"{p:.3f}" if isinstance(p, float) else "–")
    link = f"[{name}]({suffix}-{name}{'-paired' if paired else ''}.md)"
    if suffix in TITLES:
        title = TITLES[suffix]
    elif suffix.startswith("optimize-rtt"):
        title = f"{TITLES['optimize']}, emulated RTT {suffix.removeprefix('optimize-rtt')} ms"
    else:
        title = f"{TITLES['optimize']}, set {suffix.removeprefix('optimize-')}"
    medians = f"{ms(root.get('before_median_ms'))} | {ms(root.get('after_median_ms'))}"
    if paired:
        title += ", paired by round (span-diff --paired)"
        runs = f"{_count(data['before'])} pairs"
    return f"| {title} | {link} | {runs} | {medians} | {change} | {ci} | {p_text} |"


def _count(side: object) -> object:
    return side.get("runs", "?") if isinstance(side, dict) else "?"


# the sets also compared pair by pair (Wilcoxon signed-rank): enough rounds (8) for it to reach p < 0.05
PAIRED = ("optimize-b",)

# each side runs its own venv: the paths in span names (jedi's subprocess) say which
NORMALIZE = ("--normalize", r"venv-[0-9a-z]+")


def diff(
    store: Path, before: str, after: str, fmt: str, out: Path | None = None, *extra: str, check: bool = True
) -> str:
    command = [str(BIN / "span-diff"), "--store", str(store), "--format", fmt, *NORMALIZE, *extra, before, after]
    if out:
        command += ["-o", str(out)]
    done = subprocess.run(command, env=clean_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0 and check:
        raise SystemExit(f"case_study: {' '.join(command)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def has_label(store: Path, label: str) -> bool:
    return bool(labelled(store, label))


def labelled(store: Path, label: str) -> list[dict[str, object]]:
    """The store's runs with ``label``, oldest first (``otel-trace list --format json``)."""
    listed = subprocess.run(
        [str(BIN / "otel-trace"), "--store", str(store), "list", "--label", label, "-n", "0", "--format", "json"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    runs = json.loads(listed.stdout) if listed.returncode == 0 and listed.stdout.strip() else []
    return sorted(runs, key=lambda r: int(r.get("start_ns") or 0))


# ----------------------------------------------------------------- flames

# (file stem, otel-trace profile arguments, what the screenshot searches for)
FLAMES = (
    ("optimize", [], "functions_to_optimize"),
    ("run_tests", ["--span", "codeflash.run_tests"], "functions_to_optimize"),
)


def flames(store: Path) -> None:
    """The CPU flame graph of the first profiled optimize of each side, as the page otel-trace
    makes and as a PNG of it drawn by headless chromium, with the search preset in the address."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    RESULTS.mkdir(parents=True, exist_ok=True)
    for side in ("untouched", "all"):
        run_id = first_run(store, f"cs-{side}-profile")
        for stem, extra, search in FLAMES:
            page = RESULTS / f"flame-{stem}-{side}.html"
            command = [str(BIN / "otel-trace"), "--store", str(store), "profile", run_id, *extra]
            run([*command, "--format", "html", "-o", str(page)], clean_env())
            if chromium is None:
                print("case_study: no chromium (make tools): no PNG", file=sys.stderr)
                continue
            shot = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
            shot += [f"--user-data-dir={page.parent / '.chromium'}", "--window-size=1600,1000"]
            shot += [f"--screenshot={page.with_suffix('.png')}", page.as_uri() + f"#search={search}"]
            run(shot, clean_env())
    shutil.rmtree(RESULTS / ".chromium", ignore_errors=True)


def first_run(store: Path, label: str) -> str:
    runs = labelled(store, label)
    if not runs:
        raise SystemExit(f"case_study: no run labelled {label} (run the profile phase first)")
    return str(runs[0]["run_id"])


# ----------------------------------------------------------------- helpers


def clean_env() -> dict[str, str]:
    """This environment without what would make the sides differ: no byte-code suppression (each
    side reads its compiled caches), no OTEL_* of the caller, no venv of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") and k not in _DROP}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


_DROP = ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS", "PYTEST_PLUGINS")


def run(command: list[str], env: dict[str, str], cwd: Path | None = None, check: bool = True) -> None:
    print("+", " ".join(command), flush=True)
    code = subprocess.run(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, check=False).returncode
    if code and check:
        raise SystemExit(f"case_study: exit {code}: {' '.join(command)}")


if __name__ == "__main__":
    sys.exit(main())
