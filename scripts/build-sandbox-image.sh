#!/usr/bin/env bash
# Build the sandbox base image locally (skipped when the image of the current recipe
# exists). Without a registry it uses debootstrap (about 40 s); see docs/sandbox.md.
#   bash scripts/build-sandbox-image.sh [--method auto|debootstrap|dockerfile] [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m trialrun.cli_sandbox build "$@"
