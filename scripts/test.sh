#!/usr/bin/env bash
# Set up and run the test suite (everything CI runs), including the headless-browser UI test:
# scripts/install_browser.sh installs Debian's chromium + chromium-driver (apt; sudo when not root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev,llm,ray,deploy
bash scripts/install_browser.sh
bash scripts/install_postgres.sh
. .venv/bin/activate
ruff check .              # lint (rules in pyproject.toml [tool.ruff])
ruff format --check .     # formatting
dagster definitions validate -w workspace.yaml
python -m pytest "$@"
