#!/usr/bin/env bash
# Install everything the tests need (mosquitto, the package with its test and tools extras) and
# run the whole suite: lint, type check, tests. Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"

need_python
apt_install mosquitto mosquitto-clients
make_venv "test,tools"
cd "$ROOT"
# The MQTT v5 -> v3.1.1 fallback is tested against aedes, a v3.1.1-only broker that needs Node.js
# 20 or newer and npm (Debian 12's nodejs is 18: there those tests skip, saying so). Where they
# are here, the tests must run: no aedes is then a failure, not a skip.
if command -v npm >/dev/null 2>&1 \
    && node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' 2>/dev/null; then
    export HAR_AGENT_REQUIRE_AEDES=1
fi
# The service's dependency lock is checked against PyPI (every file's hash, and a locked install):
# make_venv has just installed from the package index, so here it must be reachable.
export HAR_AGENT_REQUIRE_PYPI=1

say "ruff"
"$VENV/bin/ruff" check agent tools tests
say "mypy agent/"
"$VENV/bin/mypy" agent
say "pytest"
# pytest exits 5 when it collects nothing: that is a failure here, like any other non-zero code.
"$VENV/bin/python" -m pytest -ra "$@"
