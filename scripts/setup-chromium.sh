#!/usr/bin/env bash
# Install headless Chromium from Debian's packages, unless already there. Idempotent; used by
# .ci/run and by developers for the HTML report's browser test (tests/test_html_report.py).
#   bash scripts/setup-chromium.sh      # exit 0 once /usr/bin/chromium runs
set -euo pipefail

bin=/usr/bin/chromium

if [ -x "$bin" ]; then
  echo "setup-chromium: already installed ($("$bin" --version 2>/dev/null || echo "$bin"))"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "setup-chromium: need root to install chromium" >&2
  exit 1
fi
echo "setup-chromium: installing chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Fonts: without any, headless Chromium renders text as boxes in the screenshot.
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
echo "setup-chromium: installed ($("$bin" --version 2>/dev/null || echo "$bin"))"
