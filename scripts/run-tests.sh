#!/usr/bin/env bash
# Run the whole pytest suite against SQLite and a throwaway PostgreSQL (started and removed here).
set -euo pipefail
cd "$(dirname "$0")/.."

pgdir=$(mktemp -d -t sopbot-pg-XXXXXX)
cleanup() { scripts/pg-test.sh stop "$pgdir" >/dev/null 2>&1 || true; }
trap cleanup EXIT INT TERM

SOPBOT_TEST_POSTGRES_URL=$(scripts/pg-test.sh start "$pgdir")
export SOPBOT_TEST_POSTGRES_URL
export SOPBOT_REQUIRE_POSTGRES=1
echo "test PostgreSQL: ${SOPBOT_TEST_POSTGRES_URL}" >&2

.venv/bin/pytest -q -p no:cacheprovider "$@"
