#!/usr/bin/env bash
# Builds the C API (into $CARGO_TARGET_DIR, default target/), compiles capi/examples/run_model.c against
# capi/include/carve.h, runs a shared model (sk_digits_mlp) with caller buffers and carve-allocated
# outputs and checks them against the reference, then runs it under valgrind (errors and leaks fail).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${CARVE_SHARED:-../shared}
TARGET=${CARGO_TARGET_DIR:-target}
cargo build -p carve-capi
LIB="$TARGET/debug"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
gcc -std=c11 -Wall -Wextra -Werror -O1 -g -I capi/include capi/examples/run_model.c \
  -L "$LIB" -lcarve_capi -Wl,-rpath,"$(cd "$LIB" && pwd)" -lm -o "$OUT/run_model"
MODEL="$SHARED/models/sk_digits_mlp"
"$OUT/run_model" "$MODEL"
"$OUT/run_model" "$MODEL" --alloc
# valgrind cannot decode AVX-512 (EVEX): the JIT targets this machine without it.
CARVE_CPU=native,-avx512f,-avx512vl,-avx512dq,-avx512vnni \
  valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
  --smc-check=all-non-file "$OUT/run_model" "$MODEL" --alloc
echo "capi: 3 passed, 0 failed"
