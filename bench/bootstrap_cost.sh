#!/bin/bash
# What a traced Python process pays for otel-run's bootstrap, for one or more
# checkouts of this repository, with the same interpreter and environment:
#
#   bench/bootstrap_cost.sh TREE [TREE...]        (e.g. a `git worktree` of the old commit, and .)
#
# 1. instructions (valgrind --tool=callgrind: deterministic, whatever else the
#    machine does) of `python -c pass` traced, less the same untraced;
# 2. `python -X importtime` of sitecustomize (cumulative µs), min and median of
#    N runs per tree, the trees interleaved so drift hits all alike (N=${N:-40}).
# Needs valgrind (Debian). Uses this checkout's .venv/bin/python.
set -eu
PY=$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python
TP=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01
N=${N:-40}
instructions() {
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | grep -o "Collected : [0-9]*" | grep -o "[0-9]*"
}
for tree in "$@"; do
    tree=$(cd "$tree" && pwd)
    "$PY" -m compileall -q "$tree/instrumentation" >/dev/null
    store=$(mktemp -d)
    traced=$(OTEL_RUN_STORE=$store TRACEPARENT=$TP PYTHONPATH=$tree/instrumentation/otel_run/bootstrap/site:$tree/instrumentation instructions "$PY" -c pass)
    bare=$(PYTHONPATH=$tree/instrumentation instructions "$PY" -c pass)
    echo "$tree: traced python -c pass $traced instructions, untraced $bare, bootstrap $((traced - bare))"
done
out=$(mktemp)
for i in $(seq "$N"); do
    for tree in "$@"; do
        tree=$(cd "$tree" && pwd)
        us=$(OTEL_RUN_STORE=$(mktemp -d) TRACEPARENT=$TP PYTHONPATH=$tree/instrumentation/otel_run/bootstrap/site:$tree/instrumentation \
            "$PY" -X importtime -c pass 2>&1 | awk -F'|' '/ sitecustomize$/{gsub(/ /,"",$2); print $2}')
        echo "$tree $us" >> "$out"
    done
done
for tree in "$@"; do
    tree=$(cd "$tree" && pwd)
    grep "^$tree " "$out" | awk '{print $2}' | sort -n | awk -v t="$tree" '{a[NR]=$1} END{print t ": importtime of sitecustomize, min " a[1] " us, median " a[int((NR+1)/2)] " us (" NR " runs)"}'
done
