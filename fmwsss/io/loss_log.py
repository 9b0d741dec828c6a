"""``loss.csv`` of a resumable training loop: one row per iteration (``iteration,loss,lr``).

Rows past the last checkpoint are dropped on resume (those iterations are redone), so the finished file
holds each iteration exactly once, as an uninterrupted run would write it.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

from fmwsss.io.atomic import atomic_write_bytes

CSV_HEADER = ["iteration", "loss", "lr"]


def reset_loss_csv(path: Path, upto: int) -> None:
    """Keep the header and rows of iterations <= ``upto`` (rows past the last checkpoint are redone)."""
    rows = []
    if upto and path.is_file():
        with open(path, newline="") as fh:
            rows = [r for r in csv.reader(fh)][1:]
        rows = [r for r in rows if r and int(r[0]) <= upto]
    buf = io.StringIO()
    csv.writer(buf).writerows([CSV_HEADER, *rows])
    atomic_write_bytes(path, buf.getvalue().encode())


def loss_row(iteration: int, loss: float, lr: float) -> list[str]:
    return [str(iteration), f"{loss:.6f}", f"{lr:.6e}"]
