# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
import os
import sys

# The package lives in python/ of the source tree; meson also sets PYTHONPATH.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "python"))
