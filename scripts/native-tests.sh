#!/usr/bin/env bash
# Builds the C++ kernel tests with AddressSanitizer and
# UndefinedBehaviorSanitizer in their own build directory and runs them once
# per instruction-set level, so the AVX2 and portable variants and their
# default choice are tested on an AVX-512 machine too. Levels the CPU lacks
# are skipped with a note. Needs cmake and a C++17 compiler; no Python.
#
# Usage: scripts/native-tests.sh [BUILD_DIR]   (default build/native-tests)
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${1:-build/native-tests}"
generator=()
if command -v ninja >/dev/null 2>&1; then
  generator=(-G Ninja)
fi
sanitize="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"

cmake -S . -B "$build_dir" "${generator[@]}" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DFCNNZOO_BUILD_NATIVE_TESTS=ON \
  -DCMAKE_CXX_FLAGS="$sanitize" \
  -DCMAKE_EXE_LINKER_FLAGS="$sanitize"
cmake --build "$build_dir" --parallel 2

cpu_flags="$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
for level in avx512 avx2 default; do
  case "$level" in
    avx512) needed="avx512f" ;;
    avx2) needed="avx2" ;;
    *) needed="" ;;
  esac
  if [[ -n "$needed" && " $cpu_flags " != *" $needed "* ]]; then
    echo "skipping FCNNZOO_CPU_CAPABILITY=$level: this CPU lacks $needed"
    continue
  fi
  echo "== FCNNZOO_CPU_CAPABILITY=$level"
  FCNNZOO_CPU_CAPABILITY="$level" ctest --test-dir "$build_dir" --output-on-failure
done
