#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: installs what it needs
# (a virtualenv in .venv, the Redis server binary), lints, type-checks, then runs pytest.
# PostgreSQL comes from the pgserver package unless MAILPROXY_TEST_DATABASE_URL is set;
# Redis is started by the suite unless MAILPROXY_TEST_REDIS_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "The tests need the Redis server binary: sudo apt-get install -y redis-server" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
