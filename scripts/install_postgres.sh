#!/usr/bin/env bash
# Install what tests/test_production_instance.py starts: Debian's PostgreSQL server binaries (initdb,
# pg_ctl, postgres) and the psql client. The test creates its own throwaway cluster on a free
# 127.0.0.1 port in a temporary folder and removes it at the end; it never uses the package's own
# cluster (/etc/postgresql, port 5432).
# Idempotent: returns in about a second when the binaries are already there.
set -euo pipefail

have_initdb() {
  command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if ! have_initdb || ! command -v psql >/dev/null 2>&1; then
  SUDO=""
  if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq postgresql postgresql-client >/dev/null
fi

if command -v initdb >/dev/null 2>&1; then
  initdb --version
else
  "$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)/initdb" --version
fi
psql --version
