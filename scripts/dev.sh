#!/usr/bin/env bash
# `dagster dev` (UI on http://127.0.0.1:3000 + the daemon) on a persistent local instance whose runs
# queue like production's: one run per snapshot partition, one cross-snapshot run, one step per
# `gpu` pool slot (deploy/local/dagster.yaml). Storage is SQLite under DAGSTER_HOME
# (default .dataplatform/dagster_home); extra arguments go to `dagster dev`.
set -euo pipefail
cd "$(dirname "$0")/.."

export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.dataplatform/dagster_home}"
mkdir -p "$DAGSTER_HOME"
if [[ ! -f "$DAGSTER_HOME/dagster.yaml" ]]; then
  cp deploy/local/dagster.yaml "$DAGSTER_HOME/dagster.yaml"
elif ! cmp -s deploy/local/dagster.yaml "$DAGSTER_HOME/dagster.yaml"; then
  echo "note: $DAGSTER_HOME/dagster.yaml differs from deploy/local/dagster.yaml; using $DAGSTER_HOME/dagster.yaml" >&2
fi

if [[ -x .venv/bin/dagster ]]; then
  DAGSTER=.venv/bin/dagster
else
  DAGSTER=dagster
fi
exec "$DAGSTER" dev -h 127.0.0.1 "$@"
