#!/bin/sh
# Wall-clock cost of otel-run --profile, side by side in one hyperfine run per workload:
#   short   a CPU-bound pure-Python fib(27) (~60 ms: start-up and the end-of-run wait dominate)
#   long    fib(35) (~1.5 s of pure-Python CPU: the 5 % goal for --profile cpu at 100 Hz)
#   imports python -c 'import codeflash.optimization.optimizer' (start-up only: --profile imports
#           against -X importtime, which prints the same numbers)
# Usage: bench/profile_overhead.sh [RUNS] [WORKLOAD...]   (prints Markdown tables for results/profiles.md)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/.venv/bin"
runs=${1:-10}
[ $# -gt 0 ] && shift
workloads=${*:-short long imports}
store=$(mktemp -d)
unset PYTHONDONTWRITEBYTECODE
"$bin/python" -m compileall -q "$here/instrumentation" >/dev/null 2>&1 || true
run="$bin/otel-run -q --store $store --no-export"
for workload in $workloads; do
  prog="$store/$workload.py"
  case $workload in
    short) printf 'def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib(27)\n' >"$prog" ;;
    long) printf 'def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\nfib(35)\n' >"$prog" ;;
    imports) printf 'import codeflash.optimization.optimizer\n' >"$prog" ;;
    *) echo "unknown workload $workload (short, long, imports)" >&2; exit 2 ;;
  esac
  echo "## $workload"
  if [ "$workload" = imports ]; then
    "$bin/python" "$prog"  # warm the byte-code caches
    hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$store/$workload.md" \
      -n bare "$bin/python $prog" \
      -n "python -X importtime" "$bin/python -X importtime $prog" \
      -n otel-run "$run $bin/python $prog" \
      -n "profile imports" "$run --profile imports $bin/python $prog" >/dev/null
  else
    hyperfine -N --warmup 2 --runs "$runs" --export-markdown "$store/$workload.md" \
      -n bare "$bin/python $prog" \
      -n otel-run "$run $bin/python $prog" \
      -n "profile cpu" "$run --profile cpu $bin/python $prog" \
      -n "profile memory" "$run --profile memory $bin/python $prog" \
      -n "profile cpu+memory" "$run --profile cpu,memory $bin/python $prog" \
      -n "memray run (alone)" "$bin/python -m memray run -q -f -o $store/alone.bin $prog" >/dev/null
  fi
  cat "$store/$workload.md"
  echo
done
rm -rf "$store"
