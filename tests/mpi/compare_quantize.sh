#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
# llama-quantize in one process and aqinit-mpi-quantize on 2 and 3 ranks quantize the tiny model
# with the same settings; the layer files and the manifest must be byte-identical (the .prov
# records differ only in their recorded seconds).
# usage: compare_quantize.sh LLAMA_QUANTIZE MPI_QUANTIZE MPIEXEC TINY_DIR WORK_DIR
set -euo pipefail
lq=$1 mq=$2 mpiexec=$3 tiny=$4 work=$5
rm -rf "$work"
mkdir -p "$work"
common=("$tiny/model.bin" "$tiny/calib.tok.bin" "$tiny/wikitext2_test.tok.bin" --format 2x6g4 --method oaem
        --beam 2 --epochs 2 --calib-windows 12 --ppl-windows 8 --threads 1 --seed 3)
"$lq" "${common[@]}" --out "$work/one" > "$work/one.txt"
for np in 2 3; do
    "$mpiexec" --oversubscribe -np "$np" "$mq" "${common[@]}" --out "$work/np$np" > "$work/np$np.txt"
    n=0
    for f in "$work/one"/layer-*.aqq "$work/one/manifest.txt"; do
        cmp "$f" "$work/np$np/$(basename "$f")"
        n=$((n + 1))
    done
    echo "np $np: $n files byte-identical to one process"
    # the printed perplexities agree too
    diff <(sed 's/, [0-9.]* s$//' "$work/one.txt") <(sed 's/, [0-9.]* s$//' "$work/np$np.txt")
done
