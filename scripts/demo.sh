#!/usr/bin/env bash
# Set up and run the main job on the bundled sample crawl: local storage, no credentials, no GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh llm
. .venv/bin/activate
dataplatform demo "$@"
