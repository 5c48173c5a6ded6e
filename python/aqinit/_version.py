# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""The package's version. It is the project's version, project(version : ...) in meson.build, which
the C library reports through aq_version_string(): the binding refuses to load a library of
another version (_lib.py), the build backend (python/_aqinit_build.py) refuses to build from a
source tree whose meson.build disagrees, and tests/python/test_packaging.py checks the two.
This copy exists because an sdist or an installed wheel has no meson.build."""
__version__ = "0.2.0"
