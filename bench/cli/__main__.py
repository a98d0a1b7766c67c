"""``python -m bench.cli``: the lae-bench command (a side of ``lae-bench interleave``), through
the guarded entry."""
import sys

from ..entry import console

sys.exit(console())
