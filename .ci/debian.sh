#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
# The Debian packages (debian/): build them from a copy of the tracked files with
# `dpkg-buildpackage -us -uc -b` (DEB_BUILD_OPTIONS=nocheck: .ci/run runs the tests elsewhere),
# run lintian (no errors allowed), then install the .debs and build and run consumers against
# them: C with pkg-config, C++ with CMake find_package, the tools and the Python binding.
# The install happens in a private mount namespace whose /usr, /etc and /var are overlays, so
# the machine's packages are untouched. Needs debhelper, dh-python, devscripts, lintian, cmake
# (scripts/install-deps.sh). About 2 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
ROOT=$PWD
T=$(mktemp -d /tmp/aqinit-deb.XXXXXX)
trap 'rm -rf "$T"' EXIT
version=$(sed -n "s/^  version : '\(.*\)',/\1/p" meson.build)
deb_version=$(dpkg-parsechangelog -S Version)
if [ "${deb_version%-*}" != "$version" ]; then
    echo "debian/changelog is at $deb_version, meson.build at $version" >&2; exit 1
fi

echo "=== dpkg-buildpackage -us -uc -b (aqinit $deb_version)"
mkdir "$T/aqinit-$version"
git ls-files -z --cached --others --exclude-standard | xargs -0 tar cf - | tar xf - -C "$T/aqinit-$version"
(cd "$T/aqinit-$version" && DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)" dpkg-buildpackage -us -uc -b \
    >"$T/build.log" 2>&1) || { tail -60 "$T/build.log"; exit 1; }
grep -E "dpkg-gensymbols|warning" "$T/build.log" | grep -v "^dpkg-buildpackage: warning: using a gain-root-command" || true
ls "$T"/*.deb | sed "s|$T/||"

echo "=== lintian"
lintian --fail-on error --no-tag-display-limit "$T"/*.changes | tee "$T/lintian.log"
echo "lintian: $(grep -c '^E:' "$T/lintian.log" || true) errors, $(grep -c '^W:' "$T/lintian.log" || true) warnings"

echo "=== install the .debs (overlay) and build consumers against them"
mkdir -p "$T/ov"/{usr,etc,var}/{upper,work}
unshare -m bash -euo pipefail -s "$T" "$ROOT" <<'INNER'
T=$1 ROOT=$2
for d in usr etc var; do
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/ov/$d/upper,workdir=$T/ov/$d/work" "/$d"
done
dpkg -i "$T"/*.deb >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; exit 1; }
dpkg -l 'libaqinit*' python3-aqinit aqinit-tools | grep '^ii' | awk '{print $2, $3}'
W=$T/consumers && mkdir -p "$W"
unset PKG_CONFIG_PATH
cc -std=c99 -Wall -Werror "$ROOT/examples/consumer.c" $(pkg-config --cflags --libs aqinit) -o "$W/consumer"
"$W/consumer"
cmake -S "$ROOT/tests/consumers/cmake" -B "$W/cmake" >/dev/null
cmake --build "$W/cmake" >/dev/null
"$W/cmake/consumer"
aqinit-demo --rows 64 --cols 64 --format 1x4g4 --method both --threads 1 | tail -2
llama-ppl 2>&1 | head -1 || true
for page in aqinit-demo llama-quantize llama-ppl aqinit-hf; do man -w "$page" >/dev/null; done
echo "man pages: aqinit-demo llama-quantize llama-ppl aqinit-hf"
cd / && env -u AQINIT_LIBRARY -u PYTHONPATH /usr/bin/python3 -c \
    'import aqinit; print("python3-aqinit", aqinit.__version__, "loads", aqinit._lib.lib_path)'
aqinit-hf --help | head -1
INNER
echo "Debian packages passed ($((SECONDS - start)) s)"
