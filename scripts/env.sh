# Sourced by the other scripts: create .venv if missing and install railwatch into it, with the
# training extra (torch, ultralytics) and the development tools. Counting alone needs neither:
# `pip install railwatch` (see the README, "A light install for counting").
# Re-installs only when pyproject.toml changed. Offline-safe: pip reads the configured mirror.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RAILWATCH_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "railwatch: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.railwatch-installed"
WANT="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
  echo "railwatch: installing into $VENV (torch is ~6 GB; a few minutes the first time)" >&2
  "$VENV/bin/python" -m pip install --quiet --upgrade pip >&2
  "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev,train]" >&2
  echo "$WANT" > "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
cd "$ROOT"
