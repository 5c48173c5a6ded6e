# SPDX-License-Identifier: MIT
# Copyright (c) 2026 The libaqinit developers
"""python -m aqinit.hf: the aqinit-hf command."""
import sys

from .cli import main

sys.exit(main())
