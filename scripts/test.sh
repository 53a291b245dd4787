#!/usr/bin/env bash
# Set up and run the test suite (everything CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev,ray,deploy
. .venv/bin/activate
dagster definitions validate -w workspace.yaml
python -m pytest "$@"
