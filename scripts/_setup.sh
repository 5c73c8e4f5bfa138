# Shared set-up for demo.sh and test.sh: Debian packages, a virtual environment, the package.
# Sourced, not run. Works on Debian 12 / Raspberry Pi OS (bookworm) as root or with sudo.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${HAR_AGENT_VENV:-$ROOT/.venv}"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'har-agent setup: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run '$*' (install sudo or run as root)"; fi
}

apt_install() {
    # apt_install PKG...: install the Debian packages that are missing
    local missing=()
    for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    say "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

need_python() {
    command -v python3 >/dev/null 2>&1 || apt_install python3
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "Python 3.11 or newer is needed (found $(python3 --version 2>&1))"
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    check_platform
}

check_platform() {
    # ONNX Runtime publishes wheels for 64-bit x86 and 64-bit ARM only: on a 32-bit system
    # (armv7l/armv6l, or 32-bit Raspberry Pi OS on a 64-bit kernel) pip would only say "no
    # matching distribution". HAR_AGENT_ANY_PLATFORM=1 skips the check (onnxruntime built here).
    [ "${HAR_AGENT_ANY_PLATFORM:-0}" = 1 ] && return 0
    local found
    found="$(python3 -c 'import platform, struct; print(platform.machine(), 8 * struct.calcsize("P"))')"
    case "$found" in
        "x86_64 64" | "aarch64 64" | "arm64 64") return 0 ;;
    esac
    die "this Python is ${found% *} with ${found#* }-bit pointers; ONNX Runtime has wheels only for 64-bit x86_64 and aarch64: install the 64-bit Raspberry Pi OS (bookworm), or set HAR_AGENT_ANY_PLATFORM=1 if onnxruntime is built for this machine"
}

make_venv() {
    # make_venv EXTRAS: create .venv if needed and install the package with those extras
    local extras="$1"
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating virtual environment $VENV"
        python3 -m venv "$VENV"
    fi
    say "installing har-agent${extras:+[$extras]} into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e "$ROOT${extras:+[$extras]}"
}

mosquitto_exe() {
    command -v mosquitto 2>/dev/null || { [ -x /usr/sbin/mosquitto ] && echo /usr/sbin/mosquitto; }
}

port_open() {
    # port_open HOST PORT: is something listening?
    "$VENV/bin/python" - "$1" "$2" <<'PY'
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}
