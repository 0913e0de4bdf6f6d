"""The malformed corpus of ``tests/reliability/test_bad_input.py`` fed to every
reader command of a checkout: how many calls printed a traceback, hung, or
answered wrongly, and how big the output for the deep chains is.

    .venv/bin/python bench/bad_input.py                  # this checkout
    .venv/bin/python bench/bad_input.py --code /tmp/main # another checkout (its instrumentation/ is used)

A hang is a call still running after ``--timeout`` seconds (default 60, as the
issue measured); it is killed then.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.test_bad_input import (
    CASES,
    T,
    code_env,
    dead_endpoint,
    problems,
    run_case,
    started_receiver,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--code", type=Path, help="a checkout whose instrumentation/ to run (default: this one)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a call counts as hung")
    parser.add_argument("-k", dest="only", help="only cases whose name contains this")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every problem")
    args = parser.parse_args()
    env = code_env(args.code / "instrumentation" if args.code else None)
    server, stop = started_receiver()
    dead = dead_endpoint()
    cases = [c for c in CASES if not args.only or args.only in c.name]
    calls = tracebacks = hangs = wrong = 0
    sizes: list[str] = []
    started = time.monotonic()
    try:
        for case in cases:
            with tempfile.TemporaryDirectory(prefix="bad-input-") as tmp:
                done = run_case(case, Path(tmp), server.endpoint, dead, env, args.timeout)
                found = problems(case, done, Path(tmp) / "store" / "traces" / f"{T}.jsonl")
            calls += len(done)
            bad_tb = [c for c in done if c.traceback and not c.hung]
            bad_hang = [c for c in done if c.hung]
            tracebacks += len(bad_tb)
            hangs += len(bad_hang)
            others = [p for p in found if ": traceback" not in p and ": no answer within" not in p]
            wrong += len(others)
            flags = f"{len(bad_tb)} tb, {len(bad_hang)} hung, {len(others)} other"
            print(f"{case.name:40s} {flags}", flush=True)
            if args.verbose:
                for p in found:
                    print(f"    {p[:300]}")
            if case.name.startswith("chain-"):
                for c in done:
                    if c.label in ("show", "span-diff-files", "span-diff-runs"):
                        sizes.append(f"{case.name} {c.label}: {len(c.stdout.encode()):,} bytes of output")
    finally:
        stop()
    print()
    print(f"{len(cases)} malformed inputs, {calls} reader calls, {time.monotonic() - started:.0f} s:")
    print(f"  tracebacks {tracebacks}, hangs {hangs} (timeout {args.timeout:g} s), other wrong answers {wrong}")
    for s in sizes:
        print(f"  {s}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
