"""PyTorch's launcher from the outside, without importing torch: the command line that
starts N ranks of a deepstrata command under ``python -m torch.distributed.run``, and
the one line that says why they failed (torchrun's "Root Cause" entry).

Two commands start ranks this way: ``fit --nproc N`` (:mod:`deepstrata.cli.launch`) and
``search --trial-nproc N`` (:mod:`deepstrata.search.ranks`, one torchrun per trial).

>>> command(2, ["search", "--run-trial", "t.json"])[2:5]
['torch.distributed.run', '--standalone', '--nproc-per-node=2']
>>> root_cause(["nothing useful"])
'the training processes failed'
"""

from __future__ import annotations

import re
import sys

__all__ = ["command", "root_cause"]


def command(nproc: int, args: list[str], *, max_restarts: int = 0) -> list[str]:
    """``python -m torch.distributed.run`` starting ``nproc`` ranks of ``deepstrata ARGS``
    on this machine."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a c10d rendezvous on a free local port
        f"--nproc-per-node={nproc}",
        f"--max-restarts={max_restarts}",
        "-m",
        "deepstrata",
        *args,
    ]


def root_cause(lines: list[str]) -> str:
    """torchrun's "Root Cause" entry as one line: which rank, and how it ended."""
    text = "".join(lines)
    cause = text[text.find("Root Cause") :] if "Root Cause" in text else ""
    rank = re.search(r"rank\s*:\s*(\d+)", cause)
    code = re.search(r"exitcode\s*:\s*(-?\d+)[^\n]*?(?:\((SIG\w+)\))?\s*$", cause, re.M)
    if rank is None or code is None:
        return "the training processes failed"
    how = f"was killed by {code[2]}" if code[2] else f"exited with status {code[1]}"
    errors = [line.strip() for line in lines if line.startswith("error: ")]
    detail = f" ({errors[0]})" if errors else ""
    return f"training rank {rank[1]} {how}{detail}"
