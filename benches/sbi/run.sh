#!/usr/bin/env bash
# The sbibm benchmark of conditional flows (docs/sbi.md): per task, 10^4 simulated pairs, one
# posterior p(theta | x) trained with default flags (objective "default": no --objective flag,
# so the conditional default; "ml" or "fm": that objective), 10^4 posterior samples per
# observation 1..10, and C2ST against the reference posterior (sbibm's samples for two moons
# and SLCP, exact draws for gaussian linear). Prints a table and writes it to WORK/results.md.
#
#   benches/sbi/run.sh [--tasks "two_moons gaussian_linear slcp"] [--objectives "default"]
#                      [--observations "1 2 3 4 5 6 7 8 9 10"] [--sims 10000] [--work DIR]
#                      [--steps "train sample c2st"] [--lock FILE]
#
# Steps: `train` (simulate and train), `sample` (10^4 draws per observation, timed), `c2st`
# (score the draws). Each step leaves its results in WORK/TASK/ (train-OBJ.time, sample-OBJ-K.time,
# c2st-OBJ-K.txt), so the steps may run in separate calls (for instance C2ST of one task while
# another trains) and the table shows whatever has finished. With --lock FILE, training and each
# timed sampling run hold `flock FILE` (a machine shared by several users serialises its timed
# runs); C2ST (its score does not depend on load) runs under `nice -n 10`, one process at a time
# on one BLAS thread, without the lock.
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
STEPS="train sample c2st"
LOCK=""
while [ $# -gt 0 ]; do
    case "$1" in
        --tasks) TASKS=$2; shift 2 ;;
        --objectives) OBJECTIVES=$2; shift 2 ;;
        --observations) OBSERVATIONS=$2; shift 2 ;;
        --sims) SIMS=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --steps) STEPS=$2; shift 2 ;;
        --lock) LOCK=$2; shift 2 ;;
        *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
WORK=${WORK:-$(mktemp -d /tmp/cnf-sbi.XXXXXX)}
mkdir -p "$WORK"
step() { case " $STEPS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
# timed FILE CMD..: runs CMD (under the lock, when given) and writes its wall seconds to FILE,
# timed inside the lock so that waiting for it is not counted.
timed() {
    local file=$1; shift
    local run=(bash -c 't0=$(date +%s.%N); "${@:2}"; rc=$?; t1=$(date +%s.%N);
        awk -v a="$t0" -v b="$t1" "BEGIN { printf \"%.3f\n\", b - a }" > "$1"; exit $rc' _ "$file" "$@")
    if [ -n "$LOCK" ]; then flock "$LOCK" "${run[@]}"; else "${run[@]}"; fi
}
PYTHON=${PYTHON:-/tmp/venv-sbi/bin/python}
if step c2st && ! "$PYTHON" -c "import numpy, sklearn" 2>/dev/null; then
    python3 -m venv /tmp/venv-sbi && /tmp/venv-sbi/bin/pip install -q numpy scikit-learn
    PYTHON=/tmp/venv-sbi/bin/python
fi

if step train || step sample; then
    (cd "$ROOT" && CARGO_INCREMENTAL=0 cargo build --release --bin cnf --example sbi_simulate)
fi
CNF="$ROOT/target/release/cnf"
SIMULATE="$ROOT/target/release/examples/sbi_simulate"
DATA="$ROOT/crates/cnf-train/tests/data/sbi"

names() { local p=$1 n=$2; seq -s, -f "${p}_%g" 1 "$n"; }
dims() { case $1 in two_moons) echo "2 2" ;; gaussian_linear) echo "10 10" ;; slcp) echo "5 8" ;; *) echo "unknown task $1" >&2; exit 2 ;; esac; }
load() { cut -d' ' -f1 /proc/loadavg; }

for task in $TASKS; do
    read -r dt dx <<< "$(dims "$task")"
    THETA=$(names theta "$dt")
    CONTEXT=$(names x "$dx")
    T="$WORK/$task"
    mkdir -p "$T"
    if step train; then
        "$SIMULATE" "$task" --n "$SIMS" --seed 0 --out "$T/sims.csv"
        for k in $OBSERVATIONS; do
            if [ "$task" = gaussian_linear ]; then
                "$SIMULATE" "$task" --observation "$k" --given "$T/given_$k.csv" \
                    --reference "$T/reference_$k.csv" --n-reference "$SAMPLES" --seed "$k"
            else
                "$SIMULATE" "$task" --observation "$k" --given "$T/given_$k.csv"
            fi
        done
    fi
    for objective in $OBJECTIVES; do
        MODEL="$T/model-$objective"
        if step train; then
            flags=()
            [ "$objective" = default ] || flags=(--objective "$objective")
            timed "$T/train-$objective.seconds" "$CNF" train --data "$T/sims.csv" --context "$CONTEXT" "${flags[@]}" \
                --no-plots --out "$MODEL" --force > "$T/train-$objective.log" 2>&1 \
                || { echo "cnf train failed ($T/train-$objective.log):"; tail -5 "$T/train-$objective.log"; exit 1; }
            train_s=$(cat "$T/train-$objective.seconds")
            iterations=$(sed -n 's/^trained \([0-9]*\) iterations.*/\1/p' "$T/train-$objective.log")
            echo "$train_s $iterations $(load)" > "$T/train-$objective.time"
            echo "$task $objective: trained in $train_s s ($iterations iterations, load $(load))"
        fi
        for k in $OBSERVATIONS; do
            POST="$T/posterior-$objective-$k.csv"
            if step sample; then
                timed "$T/sample-$objective-$k.seconds" "$CNF" sample --model "$MODEL" -n "$SAMPLES" \
                    --given "$T/given_$k.csv" --output "$POST"
                echo "$(cat "$T/sample-$objective-$k.seconds") $(load)" > "$T/sample-$objective-$k.time"
            fi
            if step c2st; then
                if [ "$task" = gaussian_linear ]; then REF="$T/reference_$k.csv"
                elif [ "$task" = two_moons ]; then REF="$DATA/two_moons/reference_$k.csv"
                else REF="$DATA/$task/reference_$k.csv.bz2"; fi
                acc=$(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 nice -n 10 "$PYTHON" \
                    "$ROOT/benches/sbi/c2st.py" "$REF" "$POST" --columns "$THETA")
                echo "$acc" > "$T/c2st-$objective-$k.txt"
                echo "$task $objective observation $k: C2ST $acc"
            fi
        done
    done
done

# The table, from whatever the steps have left in WORK (this call's or earlier ones').
TABLE="$WORK/results.md"
{
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet || echo '+dirty'), $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -m)"
    echo "tasks \"$TASKS\", objectives \"$OBJECTIVES\", observations \"$OBSERVATIONS\", $SIMS simulations"
    echo
    echo "| task | objective | C2ST mean | C2ST per observation | train s (iterations; load) | sample s, $SAMPLES draws (min / median / max; load) |"
    echo "|---|---|---|---|---|---|"
    for task in $TASKS; do
        T="$WORK/$task"
        for objective in $OBJECTIVES; do
            scores=""
            for k in $OBSERVATIONS; do
                f="$T/c2st-$objective-$k.txt"
                [ -f "$f" ] && scores="$scores $(cat "$f") ($k)"
            done
            mean=$(echo "$scores" | tr ' ' '\n' | { grep -v '(' || true; } | awk 'NF { s += $1; n++ } END { if (n) printf "%.3f (%d observations)", s / n, n; else print "not scored" }')
            train="not trained"
            [ -f "$T/train-$objective.time" ] && train=$(awk '{ printf "%s (%s; %s)", $1, $2, $3 }' "$T/train-$objective.time")
            sample=$({ cat "$T"/sample-"$objective"-*.time 2>/dev/null || true; } | sort -n | awk '{ t[NR] = $1; l = l (l ? ", " : "") $2 } END { if (NR) printf "%s / %s / %s (%s)", t[1], t[int((NR + 1) / 2)], t[NR], l; else print "not sampled" }')
            echo "| $task | $objective | $mean |$scores | $train | $sample |"
        done
    done
} > "$TABLE"

echo
cat "$TABLE"
echo
echo "(work files in $WORK; sbibm, Lueckmann et al. 2021, at 10^4 simulations: NPE 0.606 / 0.901 / 0.552,"
echo " SNPE 0.554 / 0.845 / 0.544 on two moons / SLCP / gaussian linear)"
