#!/usr/bin/env bash
# Install everything the tests need (mosquitto, the package with its test and tools extras) and
# run the whole suite: lint, type check, tests. Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/_setup.sh"

need_python
apt_install mosquitto mosquitto-clients
make_venv "test,tools"
cd "$ROOT"

say "ruff"
"$VENV/bin/ruff" check agent tools tests
say "mypy agent/"
"$VENV/bin/mypy" agent
say "pytest"
# pytest exits 5 when it collects nothing: that is a failure here, like any other non-zero code.
"$VENV/bin/python" -m pytest -ra "$@"
