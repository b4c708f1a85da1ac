"""Data-parallel training through PyTorch's own machinery: torchrun starts the processes, DDP averages gradients.

`runtime.devices` processes per machine and `runtime.nodes` machines make the world. The train stage's command is
the same at any size: when the world is larger than one and the process was not started by torchrun, the CLI
starts torchrun with the same command line (`launch_command`), and each process it starts finds its rank in the
environment torchrun sets (`World.from_env`).

What stays the same as one process with the same `train.batch_size` (the global batch):
- each epoch's sample order and minority resampling: every rank draws the same global order from the same seed
  and takes its share of each global batch (`GlobalBatchShard`), so the ranks' batch i together are exactly
  the samples of one process's batch i (in another order than one process draws, from a generator of its own);
- the gradient of a step: DDP averages the ranks' mean gradients over equal shares, the mean over the global batch;
- validation: each rank predicts a share of the held-out rows, the logits are gathered, and every rank scores the
  whole set, so all ranks agree on the best epoch and early stopping.
- each sample's augmentation: every draw carries its own seed (`maskcls.dataset.TrainDraws`), so the ranks
  augment their shares of a global batch exactly as one process augments the whole batch.
What differs (so results are close, not bit-identical, to one process): BatchNorm statistics are per rank (CUDA
runs convert to SyncBatchNorm, which CPU lacks), and the sums of the gradient all-reduce round differently.
Only rank 0 writes checkpoints, DVCLive logs and outputs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from maskcls.errors import ParamsError, ResourceError


@dataclass(frozen=True)
class World:
    rank: int = 0  # global rank: 0 writes the outputs
    local_rank: int = 0  # rank on this machine: picks the GPU
    size: int = 1

    @classmethod
    def from_env(cls) -> World:
        """The process's place as torchrun's environment says; a plain process is a world of one."""
        if "LOCAL_RANK" not in os.environ:
            return cls()
        return cls(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def requested_size(rt) -> int:
    return rt.devices * rt.nodes


def under_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def launch_command(rt, argv: Sequence[str], node_rank: int = 0) -> list[str]:
    """torchrun (as `python -m torch.distributed.run`, the same installation) running `maskcls <argv>` on every
    process. One machine: `--standalone`. Several: torchrun's static rendezvous at `runtime.rdzv_endpoint` (machine
    0's host:port), each machine with its own `node_rank`, so global rank 0 runs on machine 0, where DVC runs and
    the outputs belong. (c10d's rendezvous would number the machines by host name instead.)"""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={rt.devices}"]
    if rt.nodes == 1:
        cmd.append("--standalone")
    else:
        cmd += [
            f"--nnodes={rt.nodes}",
            f"--node-rank={node_rank}",
            "--rdzv-backend=static",
            f"--rdzv-endpoint={rt.rdzv_endpoint}",
        ]
    return [*cmd, "-m", "maskcls", *argv]


def device_for(world: World, device: torch.device) -> torch.device:
    """Each process of a CUDA world owns the GPU of its local rank; CPU processes share the CPU."""
    if device.type == "cuda" and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device


def start(world: World, device: torch.device) -> None:
    """Join the process group: NCCL between GPUs, gloo on CPU."""
    if not world.distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def stop(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def check_batch(batch_size: int, world: World) -> int:
    """Each process's share of the global batch."""
    if batch_size % world.size:
        raise ParamsError(
            f"train.batch_size: {batch_size} is the global batch and must divide evenly over the {world.size} "
            "processes (runtime.devices x runtime.nodes)"
        )
    return batch_size // world.size


class GlobalBatchShard(Sampler):
    """This rank's share of every global batch of `order` (the draws one process would take, in order).

    Global batch i is order[i*B : (i+1)*B]; rank r takes its r-th of `world` equal slices. With `drop_last`
    a short final batch is dropped, as one process does; without it, the last batch is cut to a multiple of the
    world size so every rank runs the same number of steps (DDP needs every rank in every all-reduce).
    """

    def __init__(self, order: Sequence, global_batch: int, world: World, drop_last: bool):
        self.order = list(order)
        self.global_batch = global_batch
        self.world = world
        self.drop_last = drop_last

    def batches(self) -> list[list]:
        n, b = len(self.order), self.global_batch
        full = [self.order[i : i + b] for i in range(0, n - n % b, b)]
        rest = self.order[n - n % b :]
        if rest and not self.drop_last:
            rest = rest[: len(rest) - len(rest) % self.world.size]
            if rest:
                full.append(rest)
        return full

    def __iter__(self) -> Iterator:
        for batch in self.batches():
            share = len(batch) // self.world.size
            yield from batch[self.world.rank * share : (self.world.rank + 1) * share]

    def __len__(self) -> int:
        return sum(len(b) // self.world.size for b in self.batches())


def shard_rows(n: int, world: World) -> slice:
    """This rank's contiguous part of n validation rows (the first ranks take one more when n does not divide)."""
    share, extra = divmod(n, world.size)
    start = world.rank * share + min(world.rank, extra)
    return slice(start, start + share + (world.rank < extra))


def sum_across(world: World, values: list[float]) -> list[float]:
    """Element-wise sums over the ranks (epoch loss totals and counts), the same on every rank."""
    if not world.distributed:
        return values
    total = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(total)
    return total.tolist()


def check_same_start(world: World, epoch: int, where: str) -> None:
    """Every rank resumes from the same epoch, or none starts: a rank that found no checkpoint on its machine
    while others resumed would train other weights (and hang DDP at the end of the shorter run)."""
    if not world.distributed:
        return
    epochs: list[int | None] = [None] * world.size
    dist.all_gather_object(epochs, epoch)
    if len(set(epochs)) > 1:
        raise ResourceError(
            f"the processes would resume from different epochs {epochs} (rank order): {where} must be on storage "
            "every machine shares, or be deleted on every machine to start afresh"
        )


def unwrap(net: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DDP (or torch.compile) wrapper: what EMA follows, validation scores and outputs save."""
    for attr in ("module", "_orig_mod"):
        while hasattr(net, attr) and isinstance(getattr(net, attr), torch.nn.Module):
            net = getattr(net, attr)
    return net


def wrap(net: torch.nn.Module, world: World, device: torch.device, unused_parameters: bool) -> torch.nn.Module:
    """DDP around `net` in a world larger than one (gradients averaged over the ranks at each backward)."""
    if not world.distributed:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids, find_unused_parameters=unused_parameters)


def gather_logits(world: World, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every rank's logits of its `shard_rows` part, concatenated in rank order: the whole set, on every rank."""
    if not world.distributed:
        return logits
    parts: list[dict[str, torch.Tensor] | None] = [None] * world.size
    dist.all_gather_object(parts, {k: v.cpu() for k, v in logits.items()})
    return {k: torch.cat([p[k] for p in parts]) for k in logits}
