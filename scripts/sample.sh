#!/usr/bin/env bash
# Quick start, command 1: create the environment if missing, install, and run the main job on
# the bundled (SIMULATED) sample_tiles/, writing the report into railwatch-out/.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
railwatch inspect sample_tiles/*.tif
echo "railwatch: scenes inspected; counting needs the detector (issue 4), not shipped yet." >&2
