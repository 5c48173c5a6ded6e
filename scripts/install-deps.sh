#!/bin/sh
# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
# Install the Debian packages libaqinit needs to build, test and benchmark (clang and
# libclang-rt-dev: .ci/tsan.sh; abigail-tools: .ci/abi.sh; python3-pip: the install tests of
# tests/python/test_packaging.py; libopenmpi-dev, openmpi-bin, python3-mpi4py: the MPI adapter, the binding's Comm and the mpi suite;
# cmake: the CMake consumer of .ci/consumers.sh; doxygen: the optional API reference; debhelper,
# dh-python, lintian: the Debian packages of .ci/debian.sh).
set -e
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    build-essential g++ meson ninja-build pkg-config libopenblas-dev liblapacke-dev check \
    python3 python3-numpy python3-pytest python3-pip valgrind clang libclang-rt-dev abigail-tools \
    libopenmpi-dev openmpi-bin python3-mpi4py cmake doxygen debhelper dh-python lintian >/dev/null
echo "dependencies installed"
