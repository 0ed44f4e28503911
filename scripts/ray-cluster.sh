#!/usr/bin/env bash
# A local Ray cluster of NODES nodes on loopback, for tests and bench/bench_ray.py.
#
#   scripts/ray-cluster.sh start DIR [PORT] [NODES] [CPUS]   # prints the address, e.g. 127.0.0.1:26379
#   scripts/ray-cluster.sh exec DIR -- CMD...                # run CMD where it can reach the cluster
#   scripts/ray-cluster.sh stop DIR
#
# Ray cannot be told to listen on 127.0.0.1 only (it rewrites the node address to the host's
# IP and its servers bind every interface), so the cluster lives in its own network and PID
# namespaces (root, util-linux `unshare`/`nsenter`): every socket is on that namespace's
# loopback, and `ray stop` there sees only this cluster. Killing the namespace's init (its
# PID is in DIR/init) takes every process of the cluster with it, so nothing can outlive
# `stop`. DIR must be short (Ray's unix sockets live under it; 107-byte path limit).
# Token auth is off on every process of the namespace: it is unreachable from outside.
set -euo pipefail

cmd=${1:?usage: ray-cluster.sh start|exec|stop DIR ...}
dir=${2:?DIR}
RAY_BIN=${RAY_BIN:-ray}
export RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0

init_pid() { cat "$dir/init" 2>/dev/null; }

case "$cmd" in
start)
    port=${3:-26379} nodes=${4:-2} cpus=${5:-1}
    # The port must lie outside Ray's worker port range 10002-19999.
    if (( port >= 10002 && port <= 19999 )); then
        echo "ray-cluster.sh: port $port is in Ray's worker port range 10002-19999" >&2; exit 2
    fi
    mkdir -p "$dir"
    rm -f "$dir/ready" "$dir/failed" "$dir/init"
    # The namespace's init: starts the nodes, then waits (reaping orphans) until killed.
    unshare --net --pid --fork --mount-proc bash -c '
        dir=$1 port=$2 nodes=$3 cpus=$4 ray=$5
        trap "" TERM
        ip link set lo up
        common=(--num-cpus="$cpus" --disable-usage-stats)
        if "$ray" start --head --port="$port" --node-ip-address=127.0.0.1 \
                --include-dashboard=false --temp-dir="$dir/ray" "${common[@]}" \
                >>"$dir/log" 2>&1; then
            ok=1
            for ((i = 2; i <= nodes; i++)); do
                "$ray" start --address="127.0.0.1:$port" "${common[@]}" >>"$dir/log" 2>&1 \
                    || { ok=0; break; }
            done
        else
            ok=0
        fi
        if ((ok)); then touch "$dir/ready"; else touch "$dir/failed"; fi
        while :; do sleep 3600 & wait $! || true; done
    ' ray-cluster "$dir" "$port" "$nodes" "$cpus" "$RAY_BIN" </dev/null >>"$dir/log" 2>&1 &
    echo $! >"$dir/unshare"
    # The init is unshare's only child: its PID as seen from here.
    for _ in $(seq 100); do
        child=$(cat "/proc/$(cat "$dir/unshare")/task/"*/children 2>/dev/null | tr -d ' ')
        [[ -n $child ]] && { echo "$child" >"$dir/init"; break; }
        sleep 0.05
    done
    for _ in $(seq 1200); do
        [[ -e $dir/ready ]] && { echo "127.0.0.1:$port" | tee "$dir/address"; exit 0; }
        [[ -e $dir/failed ]] && break
        sleep 0.1
    done
    echo "ray-cluster.sh: the cluster did not start; see $dir/log:" >&2
    tail -20 "$dir/log" >&2
    "$0" stop "$dir" || true
    exit 1
    ;;
exec)
    shift 2
    [[ ${1:-} == -- ]] && shift
    pid=$(init_pid) || { echo "ray-cluster.sh: no cluster in $dir" >&2; exit 2; }
    exec nsenter --target "$pid" --net --pid --mount --wd="$PWD" -- "$@"
    ;;
stop)
    if pid=$(init_pid) && [[ -d /proc/$pid ]]; then
        # The clean path first; then the namespace's init, which takes every process left.
        timeout 30 nsenter --target "$pid" --net --pid --mount -- "$RAY_BIN" stop \
            >>"$dir/log" 2>&1 || true
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if [[ -e $dir/unshare ]]; then
        kill -KILL "$(cat "$dir/unshare")" 2>/dev/null || true
    fi
    rm -f "$dir/init" "$dir/unshare" "$dir/ready" "$dir/address"
    ;;
*)
    echo "usage: ray-cluster.sh start|exec|stop DIR ..." >&2; exit 2
    ;;
esac
