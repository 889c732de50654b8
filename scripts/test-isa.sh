#!/usr/bin/env bash
# The cpu backend's conformance suite and every model preset at every side it is
# served and trained at, against the reference backend, once per oneDNN ISA:
# SSE4.1, AVX2, AVX-512 (core) and the CPU's own (which may add bf16/AMX).
#
# oneDNN picks kernels, weight layouts and scratch space by CPU, so a bug can
# live in the AVX2 path of a build that passes on an AVX-512 machine (it did:
# a scratchpad kept per creating thread crashed every AVX2-only CPU).
# DNNL_MAX_CPU_ISA makes oneDNN behave as an older CPU would; a cap above what
# the CPU has changes nothing, so it is skipped and said so.
#
# No -race here: the reference backend's plain loops run several times slower
# under it, and `make test` already runs these packages with -race natively. The
# reference results do not depend on the ISA, so they are computed once and kept
# in a temporary folder for the whole matrix (TestPresetsMatchRef -refcache).
set -euo pipefail
cd "$(dirname "$0")/../engine"

flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { [[ " $flags " == *" $1 "* ]]; }
caps=()
has sse4_1 && caps+=(SSE41)
has avx2 && has fma && caps+=(AVX2)
has avx512f && has avx512bw && has avx512vl && has avx512dq && caps+=(AVX512_CORE)
echo "test-isa: CPU $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); flags: $(grep -o 'avx512[a-z_0-9]*\|avx2\|sse4_1\|amx[a-z_0-9]*' <<<"$flags" | sort -u | tr '\n' ' ')"
for want in SSE41 AVX2 AVX512_CORE; do
  [[ " ${caps[*]} " == *" $want "* ]] || echo "test-isa: skipping $want: this CPU does not have it"
done

cache=$(mktemp -d)
trap 'rm -rf "$cache"' EXIT
go test -c -o "$cache/cpu.test" ./backend/cpu/
go test -c -o "$cache/model.test" ./model/

status=0
for isa in "${caps[@]}" native; do
  cap=$isa
  [ "$isa" = native ] && cap=
  # oneDNN names the ISA it dispatches to on its first primitive when verbose.
  chosen=$(cd backend/cpu && DNNL_MAX_CPU_ISA=$cap ONEDNN_VERBOSE=1 "$cache/cpu.test" -test.run 'TestConformance/conv2d' 2>&1 |
    grep -m1 -oE '(onednn|dnnl)_verbose,info,cpu,isa:[^,]*' | sed 's/.*isa://' || true)
  echo "== test-isa $isa (DNNL_MAX_CPU_ISA=${cap:-unset}; oneDNN: ${chosen:-unknown})"
  start=$SECONDS
  (cd backend/cpu && DNNL_MAX_CPU_ISA=$cap "$cache/cpu.test" -test.count=1) || status=1
  (cd model && DNNL_MAX_CPU_ISA=$cap "$cache/model.test" -test.count=1 \
    -test.run 'TestPresetsMatchRef|TestParityWithPyTorch|TestForwardDoesNotAllocate|TestGenerateIsDeterministic' \
    -allsides -refcache "$cache") || status=1
  echo "test-isa: $isa done in $((SECONDS - start)) s"
done
exit $status
