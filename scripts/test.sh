#!/usr/bin/env bash
# Quick start, command 2: create the environment if missing, then run the whole test suite
# (notebooks included). Extra arguments go to pytest.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ruff check railwatch tests
python -m pytest "$@"
