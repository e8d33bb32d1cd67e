"""Data-parallel training on PyTorch's own engine: torchrun + DistributedDataParallel.

torchrun (``torch.distributed.run``, the elastic agent) starts one process per rank and
tells each, in its environment, who it is (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) and
where the rendezvous store is (``MASTER_ADDR``/``MASTER_PORT``). :func:`process_group`
joins that group; everything else here is a no-op on one process, so the single-process
loop runs exactly as it always did (its exact-resume tests are unchanged).

How the trainer uses these (each line in trainer.py says why):

* every rank walks the same global shuffle (same seed) and trains on its contiguous
  share of every global batch (:func:`shard`): the global batch size is the user's, the
  same on any number of processes, and every rank runs the same number of steps, so no
  rank waits at a collective another never reaches (the hang that ``Join`` exists for);
* each rank's loss is weighted by its share of the batch (:func:`shard`'s weight), so
  DDP's gradient average equals the gradient of the global batch's mean loss, also when
  the last batch splits unevenly;
* the batch loss is summed over ranks every step (:func:`all_sum`): all see the same
  epoch loss and the same finiteness verdict;
* validation rows are split over ranks and the outputs gathered (:func:`forward_sharded`):
  every rank computes the same validation figures, so they agree on the best epoch;
* the range test, the precision probe, the time limit and the stop decision are taken
  on rank 0 and broadcast (:func:`from_main`): timings differ between processes;
* only rank 0 writes checkpoints, logs and the bundle (:func:`is_main`); every rank
  restores from the same checkpoint file (a shared filesystem across machines).

Backends: gloo on CPU, NCCL on CUDA (``DEEPSTRATA_BACKEND`` overrides; NCCL without CUDA
is a :class:`~deepstrata.errors.DistributedError`). ``DEEPSTRATA_RENDEZVOUS_TIMEOUT``
(seconds, default 300) bounds how long a rank waits for the others.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from deepstrata.errors import DistributedError

BACKEND_ENV, TIMEOUT_ENV = "DEEPSTRATA_BACKEND", "DEEPSTRATA_RENDEZVOUS_TIMEOUT"
DEFAULT_TIMEOUT = 300.0


def launched() -> bool:
    """Whether torchrun (or anything setting its variables) started this process as one rank
    of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Rank 0, or a single process: the one that writes checkpoints, logs and the bundle."""
    return rank() == 0 if dist.is_available() and dist.is_initialized() else _env_rank() == 0


def _env_rank() -> int:
    return int(os.environ.get("RANK", "0")) if launched() else 0


def restart_count() -> int:
    """How many times torchrun's elastic agent has restarted this job's workers."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def backend_for(device: torch.device) -> str:
    """gloo on CPU, NCCL on CUDA; ``DEEPSTRATA_BACKEND`` chooses explicitly."""
    backend = os.environ.get(BACKEND_ENV, "auto").lower()
    if backend not in ("auto", "gloo", "nccl"):
        raise DistributedError(f"{BACKEND_ENV}={backend!r}: expected auto, gloo or nccl")
    if backend == "auto":
        backend = "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise DistributedError(
            "the NCCL backend needs CUDA, and torch sees no CUDA device here; "
            "use gloo (--backend gloo) to train on CPUs"
        )
    if backend == "nccl" and device.type != "cuda":
        raise DistributedError("the NCCL backend trains on CUDA: add --device cuda")
    return backend


def endpoint() -> str:
    return f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"


@contextlib.contextmanager
def process_group(device: torch.device | str = "cpu") -> Iterator[None]:
    """Join torchrun's process group for the block (nothing on one process, or when the
    group is joined already). A rank that cannot reach the store fails within
    ``DEEPSTRATA_RENDEZVOUS_TIMEOUT`` seconds with the endpoint named."""
    if not launched() or dist.is_initialized():
        yield
        return
    from deepstrata.train.precision import resolve_device

    device = resolve_device(device) if isinstance(device, str) else device
    backend = backend_for(device)
    # gloo binds to the address the hostname resolves to; on a machine whose hostname
    # does not resolve, loopback is the one interface every single-machine run has.
    if backend == "gloo" and os.environ.get("MASTER_ADDR") in ("127.0.0.1", "localhost"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    if device.type == "cuda":  # one GPU per local rank
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    try:
        dist.init_process_group(
            backend,
            store=_store(datetime.timedelta(seconds=timeout)),
            rank=int(os.environ["RANK"]),
            world_size=int(os.environ["WORLD_SIZE"]),
            timeout=datetime.timedelta(seconds=timeout),
        )
    except (RuntimeError, ValueError, TimeoutError) as error:  # DistStoreError is a RuntimeError
        raise DistributedError(
            f"rank {_env_rank()} could not join the rendezvous at {endpoint()} within "
            f"{timeout:g}s ({str(error).splitlines()[0][:200]}); check the address, the "
            "port and that the other processes were started"
        ) from None
    try:
        yield
    finally:
        dist.destroy_process_group()


def _store(timeout: datetime.timedelta):
    """The rendezvous store, its keys under this attempt's prefix: torchrun's agent keeps
    one store across elastic restarts, and a restarted rank must not read the address a
    dead rank of the previous attempt left there (gloo would connect to it and fail)."""
    agent = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"  # the agent hosts it
    store = dist.TCPStore(
        os.environ["MASTER_ADDR"],
        int(os.environ["MASTER_PORT"]),
        int(os.environ["WORLD_SIZE"]),
        is_master=not agent and _env_rank() == 0,
        timeout=timeout,
        multi_tenant=not agent,
    )
    return dist.PrefixStore(f"deepstrata/attempt-{restart_count()}", store)


def wrap(network: nn.Module, device: torch.device) -> nn.Module:
    """The module the training forward passes go through: DDP on several processes (it
    averages the gradients during backward), the network itself on one."""
    if world_size() == 1:
        return network
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        network,
        device_ids=[device.index or 0] if device.type == "cuda" else None,
        # Every trainable parameter takes part in every forward pass of our networks
        # (frozen ones are not DDP's); were one left out, DDP says so at the next step.
        # Searching for unused ones would cost a walk of the autograd graph per step.
        find_unused_parameters=False,
    )


def shard(index: torch.Tensor) -> tuple[torch.Tensor, float]:
    """This rank's rows of a global batch ``index`` and the weight of its loss.

    Contiguous, as equal as can be (sizes differ by at most one). The weight
    ``local_rows * world / global_rows`` makes DDP's mean of the ranks' gradients the
    gradient of the global batch's mean loss. A rank left with no row (a last batch
    smaller than the world) still runs a forward and backward, on one row with weight
    0, so that it meets the others at DDP's all-reduce."""
    world = world_size()
    if world == 1:
        return index, 1.0
    local = index.tensor_split(world)[rank()]
    if len(local) == 0:
        return index[:1], 0.0
    return local, len(local) * world / len(index)


def all_sum(*values: float) -> tuple[float, ...]:
    """Each value summed over the ranks (float64); the values themselves on one process."""
    if world_size() == 1:
        return values
    # gloo reduces CPU tensors, NCCL only CUDA ones.
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tuple(tensor.tolist())


def loss_sum(loss: float, rows: int, share: float) -> tuple[float, int]:
    """The global batch's summed loss and row count (a weight-0 stand-in row counts for
    nothing): ``(loss * rows, rows)`` on one process."""
    if world_size() == 1:
        return loss * rows, rows
    total, count = all_sum(loss * rows if share else 0.0, rows if share else 0)
    return total, int(count)


def weighted(loss: torch.Tensor, share: float) -> torch.Tensor:
    return loss * share if share != 1.0 else loss


def from_main(value_or_fn: Any) -> Any:
    """Rank 0's value (a callable is called on rank 0 only) on every rank."""
    if world_size() == 1:
        return value_or_fn() if callable(value_or_fn) else value_or_fn
    value = None
    if rank() == 0:
        value = value_or_fn() if callable(value_or_fn) else value_or_fn
    box = [value]
    # Between our own processes only; nothing read from a file is ever unpickled.
    dist.broadcast_object_list(box, src=0)
    return box[0]


def forward_sharded(
    forward: Callable[[dict], torch.Tensor], inputs: dict[str, torch.Tensor]
) -> torch.Tensor:
    """``forward(inputs)`` for every row, each rank computing a contiguous share and all
    gathering the rest: every rank ends with the same outputs, in row order."""
    if world_size() == 1:
        return forward(inputs)
    world, rows = world_size(), next(iter(inputs.values())).shape[0]
    share = -(-rows // world)
    start, stop = min(rank() * share, rows), min((rank() + 1) * share, rows)
    # A rank with no row left runs one (discarded) to learn the output's shape.
    rows_here = slice(start, stop) if stop > start else slice(0, 1)
    local = forward({k: v[rows_here] for k, v in inputs.items()})[: stop - start]
    # all_gather needs equal shapes: pad to the largest share, then cut back.
    padded = local.new_zeros((share, *local.shape[1:]))
    padded[: stop - start] = local
    pieces = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(pieces, padded)
    return torch.cat(pieces)[:rows]


def no_sync(model: nn.Module, last: bool) -> contextlib.AbstractContextManager:
    """Under gradient accumulation, DDP's all-reduce is only needed on a step's last
    micro-batch: the others add up locally."""
    if last or not hasattr(model, "no_sync"):
        return contextlib.nullcontext()
    return model.no_sync()
