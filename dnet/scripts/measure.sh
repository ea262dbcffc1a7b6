#!/usr/bin/env bash
# Measures dnet's daemon start time (with 0 and with 1000 stored endpoints) and the time of
# `dnet run --network N -- true` against a running daemon, in private network and mount
# namespaces (nothing of the machine changes) with state in a temporary directory.
#
# Usage (as root):  dnet/scripts/measure.sh [path/to/dnet] [runs]
# Build first:      CARGO_TARGET_DIR=/var/cache/rlibnetwork/target cargo build --release -p dnet
set -euo pipefail

DNET=${1:-${CARGO_TARGET_DIR:-/var/cache/rlibnetwork/target}/release/dnet}
RUNS=${2:-30}
DNET=$(readlink -f "$DNET")

if [ -z "${DNET_MEASURE_INSIDE:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "measure.sh needs root (it runs dnet in private namespaces)" >&2; exit 1; }
    exec env DNET_MEASURE_INSIDE=1 unshare --net --mount --propagation private \
        bash -c 'ip link set lo up && exec bash "$0" "$@"' "$0" "$DNET" "$RUNS"
fi

T=$(mktemp -d /tmp/dnet-measure.XXXXXX)
# A FIFO nobody writes to: reading it with a timeout is a sleep that needs no process.
mkfifo "$T/tick"
exec {TICK}<>"$T/tick"
export DNET_HOST=$T/dnet.sock
DAEMON=
cleanup() {
    [ -n "$DAEMON" ] && kill -KILL "$DAEMON" 2>/dev/null || true
    wait 2>/dev/null || true
    grep " $T/" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

now_us() { local t=${EPOCHREALTIME/./}; echo "$t"; }

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# Starts the daemon; prints the microseconds from exec to the socket appearing (the daemon
# binds its socket only once it is ready).
start_daemon() {
    local t0 t1
    t0=$(now_us)
    "$DNET" daemon --data-dir "$T/data" --run-dir "$T/run" --log-level warn 2>>"$T/daemon.log" &
    DAEMON=$!
    while [ ! -S "$DNET_HOST" ]; do
        kill -0 "$DAEMON" 2>/dev/null || { echo "daemon died:" >&2; cat "$T/daemon.log" >&2; exit 1; }
        # Sleep 0.2 ms without a process: a busy loop would take one of the daemon's cores.
        read -r -t 0.0002 -u "$TICK" || true
    done
    t1=$(now_us)
    echo $(( t1 - t0 ))
}

stop_daemon() {
    kill -TERM "$DAEMON"
    wait "$DAEMON" || true
    DAEMON=
}

# Median start time over $1 restarts, in ms.
measure_starts() {
    local n=$1 i
    for i in $(seq "$n"); do
        start_daemon
        stop_daemon
    done | median | awk '{printf "%.1f", $1/1000}'
}

# Median wall time in ms of a command run $RUNS times.
measure_cmd() {
    local i t0 t1
    for i in $(seq "$RUNS"); do
        t0=$(now_us)
        "$@" >/dev/null
        t1=$(now_us)
        echo $(( t1 - t0 ))
    done | median | awk '{printf "%.2f", $1/1000}'
}

echo "dnet: $DNET"
# First start creates the default bridge network; then restarts with nothing else stored.
start_daemon >/dev/null
stop_daemon
echo "daemon start, 0 stored endpoints (median of 5): $(measure_starts 5) ms"

start_daemon >/dev/null
"$DNET" network create m1 >/dev/null
echo "process start, dnet --version (median of $RUNS): $(measure_cmd "$DNET" --version) ms"
echo "dnet network ls (median of $RUNS): $(measure_cmd "$DNET" network ls) ms"
echo "dnet run --network m1 -- true (median of $RUNS): $(measure_cmd "$DNET" run --network m1 -- true) ms"

# 1000 endpoints: 10 networks, 100 sandboxes each joined to all 10.
nets=()
for n in $(seq 0 9); do
    "$DNET" network create "e$n" --subnet "10.200.$n.0/24" >/dev/null
    nets+=(--network "e$n")
done
t0=$(now_us)
for s in $(seq 1 100); do
    "$DNET" sandbox create "${nets[@]}" --name "s$s" >/dev/null
done
t1=$(now_us)
echo "created 100 sandboxes x 10 networks = 1000 endpoints in $(( (t1 - t0) / 1000 )) ms"
echo "dnet run --network m1 -- true with 1000 endpoints stored (median of $RUNS): $(measure_cmd "$DNET" run --network m1 -- true) ms"
stop_daemon
echo "daemon start, 1000 stored endpoints (median of 5): $(measure_starts 5) ms"
start_daemon >/dev/null
echo "endpoints after restart: $("$DNET" network ls -q | while read -r id; do "$DNET" network inspect "$id"; done | grep -c '"EndpointID"')"
stop_daemon
