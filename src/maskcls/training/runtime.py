"""Where and how tensors are computed: device, mixed precision and memory format, the same for training,
validation and prediction; and CUDA failures turned into errors that name the params key to change."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch

from maskcls.errors import ResourceError
from maskcls.params import Params, RuntimeParams
from maskcls.training.distributed import World, device_for
from maskcls.transforms import normalize


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ResourceError(
            "runtime.device is 'cuda' but PyTorch sees no CUDA device (no GPU, no driver, or a CPU-only torch "
            "build); set runtime.device: auto or cpu"
        )
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def loader_workers(rp: RuntimeParams, device: torch.device) -> int:
    """DataLoader worker processes for runtime.num_workers. auto, chosen (bench/train_throughput.py measures
    it): 0 on CPU, where augmenting a cached 128x96 batch takes milliseconds against a step of a few hundred
    and workers only take cores from the model; on CUDA the GPU waits for the CPU, so one worker per core of this
    process's share of the machine (runtime.devices processes per machine), at most 8."""
    if rp.num_workers != "auto":
        return rp.num_workers
    if device.type != "cuda":
        return 0
    return max(1, min(8, (os.cpu_count() or 1) // rp.devices))


@dataclass(frozen=True)
class Runtime:
    """How tensors are placed and computed: the same for training, validation and prediction."""

    device: torch.device
    amp: str  # off | bf16 | fp16; only on CUDA
    channels_last: bool

    def autocast(self):
        if self.amp == "off":
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=torch.bfloat16 if self.amp == "bf16" else torch.float16)

    def place(self, net: torch.nn.Module) -> torch.nn.Module:
        """The model on this runtime's device, in its memory format."""
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.channels_last else net

    def inputs(self, images: torch.Tensor, data_config: dict) -> torch.Tensor:
        x = normalize(images.to(self.device, non_blocking=True), data_config)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def runtime(params: Params, world: World = World()) -> Runtime:
    """The runtime of this process; in a DDP world each CUDA process owns the GPU of its local rank."""
    rp = params.runtime
    device = device_for(world, resolve_device(rp.device))
    cuda = device.type == "cuda"
    if cuda and world.distributed and torch.cuda.device_count() < rp.devices:
        raise ResourceError(
            f"runtime.devices is {rp.devices} but this machine has {torch.cuda.device_count()} CUDA "
            "device(s); lower runtime.devices"
        )
    amp = rp.amp if cuda else "off"
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        raise ResourceError("this GPU has no bfloat16 support; set runtime.amp: fp16 or off")
    # channels_last on every device: measured 1.15x on this CPU in portable mode, bytes unchanged across CPUs
    # (bench/results/portable_cost.json, bench/results/portable_channels_last_bytes.json)
    return Runtime(device, amp, rp.channels_last)


@contextlib.contextmanager
def actionable_errors(name: str, batch_size: int, device: torch.device):
    """CUDA failures a user can fix with params, as ResourceError naming the key to change."""
    try:
        yield
    except torch.cuda.OutOfMemoryError as exc:
        raise ResourceError(
            f"CUDA ran out of memory on {name} with batch size {batch_size}: lower train.batch_size "
            "(predict.batch_size when predicting), or set runtime.amp: bf16 (or fp16) to halve activation memory"
        ) from exc
    except RuntimeError as exc:
        if "does not have a deterministic implementation" not in str(exc):
            raise
        raise ResourceError(
            f"{name}: this model uses an operation without a deterministic kernel on {device} "
            f"({str(exc).split(',')[0]}); set runtime.deterministic: false to train it (runs are then not "
            "bit-identical)"
        ) from exc
