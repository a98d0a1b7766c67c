"""``python -m bench.cli``: the lae-bench command (a side of ``lae-bench interleave``)."""
import sys

from . import main

sys.exit(main())
