# Sourced by scripts/run and scripts/test: a project virtualenv in .venv,
# created with whatever python3 (>= 3.11) the machine has.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MECENE_VENV:-$ROOT/.venv}"

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        if ! python3 -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
            echo "Mécène needs Python 3.11 or newer as python3" >&2
            exit 1
        fi
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            # Debian's python3 ships venv separately.
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$VENV"
        fi
        "$VENV/bin/python" -m pip install -q --upgrade pip 2>&1 \
            | grep -v "^WARNING: Location" || true
    fi
}

pip_install() {
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@" 2>&1 \
        | grep -v "^WARNING: Location" || true
}

# The extension's version, as its manifest says (scripts/package names its files by it).
extension_version() {
    python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["version"])' \
        "$ROOT/extension/manifest.json"
}
