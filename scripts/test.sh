#!/usr/bin/env bash
# Quick start, command 2: create the environment if missing, then run every check: ruff, the
# import contracts (pyproject.toml [tool.importlinter]), mypy --strict and the whole test
# suite, notebooks included. Extra arguments go to pytest (`-m "not slow"` for the fast loop).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ruff check railwatch tests benchmarks
lint-imports
mypy
python -m pytest "$@"
