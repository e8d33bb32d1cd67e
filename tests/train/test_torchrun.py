"""The torchrun command line and its failure summary (no process started)."""

import sys

from deepstrata.train import torchrun


def test_the_command_starts_n_ranks_of_a_deepstrata_command():
    command = torchrun.command(3, ["fit", "d.csv"], max_restarts=2)
    assert command[0] == sys.executable and command[-3:] == ["deepstrata", "fit", "d.csv"]
    assert "--nproc-per-node=3" in command and "--max-restarts=2" in command


def test_the_root_cause_names_the_rank_and_the_error_it_printed():
    lines = [
        "error: data.csv, column 'y': not found\n",
        "Root Cause (first observed failure):\n",
        "  rank      : 0 (local_rank: 0)\n",
        "  exitcode  : 1 (pid: 7)\n",
    ]
    assert torchrun.root_cause(lines) == (
        "training rank 0 exited with status 1 (error: data.csv, column 'y': not found)"
    )
