"""python -m aqinit.hf: the aqinit-hf command."""
import sys

from .cli import main

sys.exit(main())
