"""Data-parallel training and streamed data: what they cost and what they buy here.

1. Samples per second of the Trainer on 1 process and on 2 (a gloo group on loopback,
   forked ranks), the same data, seed and global batch; the scaling efficiency
   ``sps(2) / (2 * sps(1))``.
2. The all-reduce of one step's gradients (the model's parameter count, float32) on the
   same 2-rank gloo group: time per step and the bus bandwidth it reaches; also the
   latency of a 4-byte all-reduce.
3. Streaming: rows/s and peak RSS of one pass of shuffled batches over a Parquet folder
   through ``ParquetStream.batches``, against reading the whole table into memory
   (``pandas.read_parquet``) and slicing the same batches; each in its own process.
4. A paper estimate for 8 machines x 8 GPUs from (1) and (2), the assumptions printed.

    .venv/bin/python bench/distributed.py            # about 3 minutes on 2 cores
    .venv/bin/python bench/distributed.py --quick
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def data(rows: int, features: int):
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(rows, features, generator=gen)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).long()
    return {"number": x}, y


def train(rows, features, epochs, batch) -> tuple[float, int]:
    """Seconds of one Trainer.fit (after a warm-up fit), and the parameter count."""
    import torch

    from deepstrata.encoders.dense import DenseEncoder
    from deepstrata.model.network import Network
    from deepstrata.train.trainer import Trainer

    inputs, target = data(rows, features)
    seconds = []
    for _ in range(2):
        torch.manual_seed(0)
        net = Network(
            encoders={"number": DenseEncoder(width=features)},
            hidden_dims=[256, 256],
            dropout=0.0,
            task="binary",
        )
        trainer = Trainer(net, loss_fn=net.loss, batch_size=batch, max_epochs=epochs, patience=99)
        start = time.perf_counter()
        trainer.fit(inputs, target)
        seconds.append(time.perf_counter() - start)
    return seconds[-1], sum(p.numel() for p in net.parameters())


def allreduce_times(parameters: int, repeats: int) -> dict:
    import torch
    import torch.distributed as dist

    result = {}
    for name, size in (("gradients", parameters), ("latency", 1)):
        tensor = torch.ones(size)
        for _ in range(5):
            dist.all_reduce(tensor)
        times = []
        for _ in range(repeats):
            dist.barrier()
            start = time.perf_counter()
            dist.all_reduce(tensor)
            times.append(time.perf_counter() - start)
        result[name] = statistics.median(times)
    return result


def rank_main(rank, world, port, args, out):
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    seconds, parameters = train(args.rows, args.features, args.epochs, args.batch)
    times = allreduce_times(parameters, args.allreduce_repeats)
    if rank == 0:
        Path(out).write_text(json.dumps({"seconds": seconds, "parameters": parameters, **times}))
    dist.destroy_process_group()


def two_ranks(args) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        out, port = os.path.join(scratch, "r.json"), free_port()
        context = multiprocessing.get_context("fork")
        ranks = [context.Process(target=rank_main, args=(r, 2, port, args, out)) for r in range(2)]
        for process in ranks:
            process.start()
        for process in ranks:
            process.join()
        return json.loads(Path(out).read_text())


def one_rank(args) -> float:
    import torch

    torch.set_num_threads(1)
    return train(args.rows, args.features, args.epochs, args.batch)


# -- streaming -------------------------------------------------------------------------------


def write_folder(path: Path, rows: int, columns: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.mkdir()
    rng = np.random.default_rng(0)
    per_file = max(rows // 8, 1)
    for index in range(8):
        x = rng.normal(size=(per_file, columns))
        table = pa.table({f"x{i}": x[:, i] for i in range(columns)})
        pq.write_table(table, path / f"part-{index}.parquet", row_group_size=25_000)


def child_pass(mode: str, folder: str, batch: int) -> None:
    """One shuffled pass of batches; prints rows/s and peak RSS (run in its own process)."""
    import pandas as pd

    from deepstrata.data.stream import ParquetStream

    status = Path("/proc/self/status").read_text().splitlines()
    base = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    start, rows = time.perf_counter(), 0
    if mode == "stream":
        for frame in ParquetStream(folder).batches(batch, seed=0, epoch=1, buffer_rows=65_536):
            rows += len(frame.to_numpy(dtype=np.float32))
    else:
        table = pd.read_parquet(folder)
        order = np.random.default_rng(0).permutation(len(table))
        for first in range(0, len(table), batch):
            rows += len(table.iloc[order[first : first + batch]].to_numpy(dtype=np.float32))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    growth = (peak - base * 1024) / 2**20
    print(
        json.dumps({"rows_per_s": rows / seconds, "peak_rss_mb": peak / 2**20, "growth_mb": growth})
    )


def streaming(args) -> dict:
    results: dict[str, list] = {"stream": [], "memory": []}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "table"
        write_folder(folder, args.stream_rows, args.stream_columns)
        for _ in range(args.repeats):
            for mode in results:  # interleaved
                done = subprocess.run(
                    [sys.executable, __file__, "--child", mode, str(folder), str(args.batch)],
                    capture_output=True,
                    text=True,
                    check=True,
                    env={**os.environ, "OMP_NUM_THREADS": "1"},
                )
                results[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {
        mode: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for mode, runs in results.items()
    }


# -- the paper estimate ----------------------------------------------------------------------


def estimate(step_seconds: float, batch: int, parameters: int, bandwidth: float, latency: float):
    """8 machines x 8 GPUs, data-parallel, the same global batch; see the printed assumptions."""
    gpus, gpu_speedup = 64, 50.0
    nic = 12.5e9  # bytes/s: one 100 Gb/s link per machine, the inter-machine bottleneck
    nccl_latency = 20e-6  # s per ring hop between machines
    gradient = 4 * parameters
    lines = [
        "assumptions: a GPU runs this model's per-row compute "
        f"{gpu_speedup:g}x faster than one CPU core here; the ring all-reduce's bottleneck "
        f"is one {nic * 8 / 1e9:g} Gb/s link per machine (NVLink inside a machine is far "
        f"faster); {nccl_latency * 1e6:g} us per hop; no overlap of compute and communication "
        "(DDP overlaps gradient buckets with backward, so this is a floor)",
        f"measured here: {step_seconds * 1e3:.2f} ms per step of {batch} rows on 1 core; "
        f"gloo loopback all-reduce {bandwidth / 1e9:.2f} GB/s bus bandwidth, "
        f"{latency * 1e6:.0f} us latency",
    ]
    for global_batch in (batch, 64 * batch, 1024 * batch):
        compute = step_seconds * global_batch / batch / gpus / gpu_speedup
        ring = 2 * (gpus - 1) / gpus * gradient / nic + 2 * (8 - 1) * nccl_latency
        efficiency = compute / (compute + ring)
        lines.append(
            f"global batch {global_batch:>7}: compute {compute * 1e3:8.3f} ms/step per GPU, "
            f"all-reduce {ring * 1e3:.3f} ms -> efficiency {efficiency:5.1%}, "
            f"{global_batch / (compute + ring):,.0f} samples/s on 64 GPUs"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        child_pass(args.child[0], args.child[1], int(args.child[2]))
        return
    args.rows, args.features, args.batch = (8_000, 50, 512) if args.quick else (40_000, 50, 512)
    args.epochs, args.allreduce_repeats = (1, 20) if args.quick else (2, 100)
    args.stream_rows, args.stream_columns = (200_000, 16) if args.quick else (1_000_000, 32)
    if args.quick:
        args.repeats = 1
    print(f"# bench/distributed.py  load average {os.getloadavg()[0]:.2f}  cores {os.cpu_count()}")
    singles, pairs = [], []
    for _ in range(args.repeats):  # interleaved
        singles.append(one_rank(args))
        pairs.append(two_ranks(args))
    samples = args.rows * args.epochs
    one = statistics.median(s for s, _ in singles)
    two = statistics.median(p["seconds"] for p in pairs)
    parameters = singles[0][1]
    gradients = statistics.median(p["gradients"] for p in pairs)
    latency = statistics.median(p["latency"] for p in pairs)
    steps = args.epochs * -(-args.rows // args.batch)
    bus = 2 * (2 - 1) / 2 * 4 * parameters / gradients
    print(
        f"model: {parameters:,} parameters; {args.rows} rows x {args.features}, global batch "
        f"{args.batch}, {args.epochs} epochs ({steps} steps), 1 thread per process"
    )
    print("| processes | samples/s | s/step | all-reduce ms/step | scaling efficiency |")
    print("|---|---|---|---|---|")
    print(f"| 1 | {samples / one:,.0f} | {one / steps * 1e3:.2f} ms | - | 1.00 |")
    print(
        f"| 2 (gloo, loopback) | {samples / two:,.0f} | {two / steps * 1e3:.2f} ms | "
        f"{gradients * 1e3:.3f} | {one / two / 2:.2f} |"
    )
    print(
        f"all-reduce of {4 * parameters / 2**20:.2f} MiB: {gradients * 1e3:.3f} ms "
        f"({bus / 1e9:.2f} GB/s bus bandwidth); 4 bytes: {latency * 1e6:.0f} us"
    )
    stream = streaming(args)
    print(
        f"\nstreaming: {args.stream_rows:,} rows x {args.stream_columns} float64 columns "
        f"({args.stream_rows * args.stream_columns * 8 / 2**20:.0f} MiB in memory), "
        f"batches of {args.batch}"
    )
    print("| reader | rows/s | peak RSS | peak RSS above the imports |")
    print("|---|---|---|---|")
    for mode, label in (
        ("memory", "whole table (pandas.read_parquet)"),
        ("stream", "ParquetStream (row groups + 65,536-row buffer)"),
    ):
        print(
            f"| {label} | {stream[mode]['rows_per_s']:,.0f} | {stream[mode]['peak_rss_mb']:.0f} MiB | {stream[mode]['growth_mb']:.0f} MiB |"
        )
    print(
        f"ratio stream / whole table: {stream['stream']['rows_per_s'] / stream['memory']['rows_per_s']:.2f} "
        f"rows/s, {stream['stream']['growth_mb'] / stream['memory']['growth_mb']:.2f} RSS above the imports"
    )
    print("\npaper estimate, 8 machines x 8 GPUs:")
    for line in estimate(one / steps, args.batch, parameters, bus, latency):
        print("  " + line)
    print(f"# load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
