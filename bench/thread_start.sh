#!/usr/bin/env bash
# How soon a decode's second thread runs, and where, after the server has been idle: the
# measurement behind tessera_openjpeg's `placement` module. A thread spawned (or a pool's
# thread woken) while the spawner keeps its CPU busy, after a pause like a server's between
# requests and with none; the same thread sent off the spawner's CPU as Tessera does (see
# bench/thread_start.c). What it shows is the machine's scheduler (on a VM, an idle virtual
# CPU counts as taken), not Tessera.
#
#   bench/thread_start.sh               # pauses of 20 ms and 0, 100 trials each
#   PAUSE_MS=50 TRIALS=200 bench/thread_start.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

PAUSE_MS=${PAUSE_MS:-20}
TRIALS=${TRIALS:-100}
need cc build-essential
cc -O2 -Wall -o "$WORK/thread_start" bench/thread_start.c -lpthread

for pause in "$PAUSE_MS" 0; do
  echo "### after a $pause ms pause ($TRIALS trials; the spawner busy 3 ms)"; echo
  "$WORK/thread_start" "$pause" "$TRIALS"
  echo
done
echo "$(nproc) cores; $(uname -r); cpuidle driver $(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo unknown)"
