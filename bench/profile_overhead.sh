#!/bin/sh
# Wall-clock cost of otel-run --profile on a CPU-bound pure-Python benchmark
# (bench/fixture-free: the loop is inline), side by side in one hyperfine run.
# Usage: bench/profile_overhead.sh [RUNS]   (writes nothing; paste into results/profiles.md)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/.venv/bin"
runs=${1:-10}
store=$(mktemp -d)
prog=$(mktemp --suffix=.py)
cat >"$prog" <<'PY'
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)
fib(27)
PY
unset PYTHONDONTWRITEBYTECODE
"$bin/python" -m compileall -q "$here/instrumentation" >/dev/null 2>&1 || true
hyperfine -N --warmup 2 --runs "$runs" --export-markdown "$store/table.md" \
  -n bare "$bin/python $prog" \
  -n otel-run "$bin/otel-run -q --store $store --no-export $bin/python $prog" \
  -n "profile cpu" "$bin/otel-run -q --store $store --no-export --profile cpu $bin/python $prog" \
  -n "profile memory" "$bin/otel-run -q --store $store --no-export --profile memory $bin/python $prog" \
  -n "profile cpu+memory" "$bin/otel-run -q --store $store --no-export --profile cpu,memory $bin/python $prog" \
  -n "memray run (alone)" "$bin/python -m memray run -q -f -o $store/alone.bin $prog"
cat "$store/table.md"
rm -rf "$store" "$prog"
