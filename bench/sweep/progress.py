"""Progress of a sweep on stderr: tqdm bars on a terminal, a line per finished cell everywhere,
nothing at all when quiet."""
from __future__ import annotations

import sys
from typing import Callable, TextIO

import numpy as np
from tqdm import tqdm

from .cells import Cell


class Progress:
    """Progress on stderr: tqdm bars (cells, and epochs of the cell with its current d_align)
    on a terminal, a line per finished cell everywhere, nothing at all when quiet."""

    def __init__(self, total_cells: int, max_epochs: int, *, quiet: bool = False,
                 stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.bars = not quiet and self.stream.isatty()
        self.max_epochs = max_epochs
        self.cells = tqdm(total=total_cells, unit="cell", desc="sweep", file=self.stream,
                          disable=not self.bars, dynamic_ncols=True)
        self.epochs: tqdm | None = None

    def say(self, message: str) -> None:
        if not self.quiet:
            tqdm.write(message, file=self.stream)

    def cell_started(self, cell: Cell, runs: int) -> Callable[[int, np.ndarray], None] | None:
        """Open the epoch bar; return the on_eval callback for run_batch (None: no bar)."""
        if not self.bars:
            return None
        self.epochs = tqdm(total=self.max_epochs, unit="epoch", desc=f"{cell.label} x{runs}",
                           file=self.stream, leave=False, dynamic_ncols=True)
        return self._on_eval

    def _on_eval(self, epoch: int, align: np.ndarray) -> None:
        self.epochs.set_postfix_str(f"d_align best {np.min(align):.3f} median "
                                    f"{np.median(align):.3f}", refresh=False)
        self.epochs.update(epoch - self.epochs.n)

    def cell_done(self, message: str | None = None) -> None:
        if self.epochs is not None:
            self.epochs.close()
            self.epochs = None
        self.cells.update()
        if message:
            self.say(message)

    def close(self) -> None:
        if self.epochs is not None:
            self.epochs.close()
        self.cells.close()
