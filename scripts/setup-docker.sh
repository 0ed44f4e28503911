#!/usr/bin/env bash
# Install the Docker Engine (and debootstrap, for the sandbox image) from Debian's packages
# and start dockerd, unless already there. Idempotent; used by .ci/run and by developers.
#   bash scripts/setup-docker.sh        # exit 0 once `docker info` answers
# dockerd runs with --iptables=false --bridge=none: sandboxes use network_mode=none, and
# this machine's kernel/netns allow no bridge. Log: /tmp/dockerd.log (DOCKERD_LOG).
set -euo pipefail

log=${DOCKERD_LOG:-/tmp/dockerd.log}
sock=/var/run/docker.sock

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "setup-docker: need root to install ${missing[*]}" >&2
    exit 1
  fi
  echo "setup-docker: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

engine_up() { DOCKER_HOST="unix://$sock" docker info >/dev/null 2>&1; }

if engine_up; then
  echo "setup-docker: engine already running"
  exit 0
fi
if pgrep -x dockerd >/dev/null 2>&1; then
  echo "setup-docker: dockerd is starting; waiting"
else
  echo "setup-docker: starting dockerd (log: $log)"
  # setsid + nohup: the daemon outlives this script and the CI step that ran it.
  setsid nohup dockerd --iptables=false --bridge=none >"$log" 2>&1 </dev/null &
fi
for _ in $(seq 1 60); do
  if engine_up; then
    echo "setup-docker: engine up ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
    exit 0
  fi
  sleep 1
done
echo "setup-docker: dockerd did not come up in 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1
