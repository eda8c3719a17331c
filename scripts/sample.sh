#!/usr/bin/env bash
# Quick start, command 1: create the environment if missing, install, and run the main job on
# the bundled (SIMULATED) sample_tiles/, writing the report into railwatch-out/.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
railwatch count sample_tiles --out railwatch-out "$@"
