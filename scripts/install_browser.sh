#!/usr/bin/env bash
# Install what tests/test_ui_browser.py drives: Debian's chromium and its matching chromedriver
# (same package version, so no driver download), and the selenium Python package into .venv.
# Idempotent: returns in about a second when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
  SUDO=""
  if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq chromium chromium-driver fonts-liberation >/dev/null
fi

if [[ -x .venv/bin/python ]]; then
  PY=.venv/bin/python
else
  PY=python3
fi
if ! "$PY" -c "import selenium" 2>/dev/null; then
  "$PY" -m pip install -q "selenium>=4.20"
fi

chromium --version
chromedriver --version
"$PY" -c "import selenium; print('selenium', selenium.__version__)"
