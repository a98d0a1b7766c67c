"""``python -m bench``: the lae-bench command, guarded from its first import (bench.entry)."""
import sys

from .entry import console

sys.exit(console())
