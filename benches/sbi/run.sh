#!/usr/bin/env bash
# The sbibm benchmark of conditional flows (docs/sbi.md): per task, 10^4 simulated pairs, one
# posterior p(theta | x) trained with default flags (objective "default": no --objective flag,
# so the conditional default; "ml" or "fm": that objective), 10^4 posterior samples per
# observation 1..10, and C2ST against the reference posterior (sbibm's samples for two moons
# and SLCP, exact draws for gaussian linear). Prints a table and writes it to WORK/results.md.
# C2ST runs one process at a time on one BLAS thread, to leave a shared machine usable.
#
#   benches/sbi/run.sh [--tasks "two_moons gaussian_linear slcp"] [--objectives "default"]
#                      [--observations "1 2 3 4 5 6 7 8 9 10"] [--sims 10000] [--work DIR]
#
# Needs: cargo; python3 with numpy + scikit-learn in $PYTHON (default /tmp/venv-sbi/bin/python,
# made with `python3 -m venv /tmp/venv-sbi && /tmp/venv-sbi/bin/pip install numpy scikit-learn`
# when missing).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TASKS="two_moons gaussian_linear slcp"
OBJECTIVES="default"
OBSERVATIONS="1 2 3 4 5 6 7 8 9 10"
SIMS=10000
SAMPLES=10000
WORK=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tasks) TASKS=$2; shift 2 ;;
        --objectives) OBJECTIVES=$2; shift 2 ;;
        --observations) OBSERVATIONS=$2; shift 2 ;;
        --sims) SIMS=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
WORK=${WORK:-$(mktemp -d /tmp/cnf-sbi.XXXXXX)}
mkdir -p "$WORK"
PYTHON=${PYTHON:-/tmp/venv-sbi/bin/python}
if ! "$PYTHON" -c "import numpy, sklearn" 2>/dev/null; then
    python3 -m venv /tmp/venv-sbi && /tmp/venv-sbi/bin/pip install -q numpy scikit-learn
    PYTHON=/tmp/venv-sbi/bin/python
fi

(cd "$ROOT" && CARGO_INCREMENTAL=0 cargo build --release --bin cnf --example sbi_simulate)
CNF="$ROOT/target/release/cnf"
SIMULATE="$ROOT/target/release/examples/sbi_simulate"
DATA="$ROOT/crates/cnf-train/tests/data/sbi"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
names() { local p=$1 n=$2; seq -s, -f "${p}_%g" 1 "$n"; }
dims() { case $1 in two_moons) echo "2 2" ;; gaussian_linear) echo "10 10" ;; slcp) echo "5 8" ;; *) echo "unknown task $1" >&2; exit 2 ;; esac; }

TABLE="$WORK/results.md"
{
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo '+dirty'), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m)"
    echo "load before: $(uptime)"
    echo "command: benches/sbi/run.sh --tasks \"$TASKS\" --objectives \"$OBJECTIVES\" --observations \"$OBSERVATIONS\" --sims $SIMS"
    echo
    echo "| task | objective | C2ST mean | C2ST per observation | train s (iterations; load) | sample s (mean of $SAMPLES draws; load) |"
    echo "|---|---|---|---|---|---|"
} > "$TABLE"

for task in $TASKS; do
    read -r dt dx <<< "$(dims "$task")"
    THETA=$(names theta "$dt")
    CONTEXT=$(names x "$dx")
    T="$WORK/$task"
    mkdir -p "$T"
    "$SIMULATE" "$task" --n "$SIMS" --seed 0 --out "$T/sims.csv"
    for k in $OBSERVATIONS; do
        if [ "$task" = gaussian_linear ]; then
            "$SIMULATE" "$task" --observation "$k" --given "$T/given_$k.csv" \
                --reference "$T/reference_$k.csv" --n-reference "$SAMPLES" --seed "$k"
        else
            "$SIMULATE" "$task" --observation "$k" --given "$T/given_$k.csv"
        fi
    done
    for objective in $OBJECTIVES; do
        MODEL="$T/model-$objective"
        flags=()
        [ "$objective" = default ] || flags=(--objective "$objective")
        t0=$(now)
        "$CNF" train --data "$T/sims.csv" --context "$CONTEXT" "${flags[@]}" \
            --no-plots --out "$MODEL" > "$T/train-$objective.log" 2>&1 \
            || { echo "cnf train failed ($T/train-$objective.log):"; tail -5 "$T/train-$objective.log"; exit 1; }
        train_s=$(elapsed "$t0" "$(now)")
        train_load=$(cut -d' ' -f1 /proc/loadavg)
        iterations=$(sed -n 's/^trained \([0-9]*\) iterations.*/\1/p' "$T/train-$objective.log")
        scores=""
        sample_total=0
        for k in $OBSERVATIONS; do
            POST="$T/posterior-$objective-$k.csv"
            t0=$(now)
            "$CNF" sample --model "$MODEL" -n "$SAMPLES" --given "$T/given_$k.csv" --output "$POST"
            sample_total=$(awk -v a="$sample_total" -v b="$(elapsed "$t0" "$(now)")" 'BEGIN { print a + b }')
            sample_load=$(cut -d' ' -f1 /proc/loadavg)
            if [ "$task" = gaussian_linear ]; then REF="$T/reference_$k.csv"
            elif [ "$task" = two_moons ]; then REF="$DATA/two_moons/reference_$k.csv"
            else REF="$DATA/$task/reference_$k.csv.bz2"; fi
            acc=$(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 "$PYTHON" "$ROOT/benches/sbi/c2st.py" "$REF" "$POST" --columns "$THETA")
            echo "$task $objective observation $k: C2ST $acc"
            scores="$scores $acc"
        done
        n_obs=$(echo $OBSERVATIONS | wc -w)
        mean=$(echo $scores | tr ' ' '\n' | awk '{ s += $1 } END { printf "%.3f", s / NR }')
        sample_s=$(awk -v a="$sample_total" -v n="$n_obs" 'BEGIN { printf "%.3f", a / n }')
        echo "| $task | $objective | $mean |$scores | $train_s ($iterations; $train_load) | $sample_s ($sample_load) |" >> "$TABLE"
    done
done

echo
cat "$TABLE"
echo
echo "(work files in $WORK; sbibm, Lueckmann et al. 2021, at 10^4 simulations: NPE 0.606 / 0.901 / 0.552,"
echo " SNPE 0.554 / 0.845 / 0.544 on two moons / SLCP / gaussian linear)"
