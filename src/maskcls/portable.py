"""Portable CPU mode: the same bytes from the CPU stages on any current x86-64 machine.

PyTorch's CPU kernels choose their code path by the instruction sets the processor reports: ATen's vectorised
kernels (AVX2 or AVX-512), oneDNN's JIT convolutions (up to AVX-512 with AMX here) and MKL's GEMMs (a branch
per ISA, and per vendor). Wider vectors and other branches sum in another order, so an AVX-512 machine and an
AVX2 machine train different weights from the same inputs. Portable mode (`runtime.portable: true`, the default)
caps all three to a baseline every current x86-64 server and desktop CPU has, AVX2, before torch is imported:

    ATEN_CPU_CAPABILITY=avx2            ATen's CPU kernel dispatch
    ONEDNN_MAX_CPU_ISA=AVX2             oneDNN (DNNL_MAX_CPU_ISA is the older name; both are set)
    MKL_CBWR=COMPATIBLE,STRICT          MKL conditional numerical reproducibility, for its GEMMs and the vector
                                        math (sqrt, exp, log, ...) ATen hands it: COMPATIBLE is the one branch
                                        besides AUTO that MKL runs on non-Intel CPUs (its AVX2 branch falls back
                                        to AUTO there); STRICT: GEMMs independent of array alignment too
    MKL_ENABLE_INSTRUCTIONS=AVX2        MKL's dispatch for anything CNR does not cover

Set in the process's environment, the cap is inherited by every process it starts (DataLoader workers, forked
or spawned). Native mode (`runtime.portable: false`) removes these variables, so the machine's best kernels run
and results hold on that CPU model only. On CUDA the switch changes nothing on the GPU: it caps the CPU kernels
only. docs/reproducibility.md has the measured cost and what is and is not byte-identical where.

The variables are read when torch's libraries first need them, so they must be in place before `import torch`:
`maskcls` applies them first thing (cli.main), reading params.yaml with ruamel alone. Applied in a process
that already imported torch with other values, the cap cannot be trusted to hold, so that is an error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from maskcls.errors import MaskclsError, ParamsError

CAP = "AVX2"  # what torch.backends.cpu.get_cpu_capability() reports under the cap
SWITCHES: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "DNNL_MAX_CPU_ISA": "AVX2",
    "MKL_CBWR": "COMPATIBLE,STRICT",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
MODE = "MASKCLS_CPU_MODE"  # portable | native: what this process (and its children) run under


class PortableError(MaskclsError):
    """The CPU cap cannot be put in place, or is not in effect."""


def wanted(portable: bool) -> dict[str, str | None]:
    """Each switch's value in `portable` mode; None: unset (native)."""
    return {name: (value if portable else None) for name, value in SWITCHES.items()}


def read_setting(params_path: str | Path = "params.yaml") -> bool:
    """`runtime.portable` from params.yaml, cheaply (no torch, no full params check); True when absent."""
    path = Path(params_path)
    if not path.is_file():
        return True
    from maskcls.params import read_yaml  # ruamel only

    try:
        data = read_yaml(path)
    except Exception:  # an unreadable file is reported by the stage's own params check
        return True
    section = data.get("runtime") if isinstance(data, dict) else None
    if section is None:
        return True
    value = section.get("portable", True) if isinstance(section, dict) else section
    if not isinstance(value, bool):
        raise ParamsError(f"{path}: runtime.portable: expected true or false, got {value!r}")
    return value


def conflicts(portable: bool, environ: dict | None = None) -> list[str]:
    """Switches whose current value differs from what `portable` mode needs."""
    environ = os.environ if environ is None else environ
    return [
        f"{name}={environ.get(name, '<unset>')} (needs {value if value is not None else '<unset>'})"
        for name, value in wanted(portable).items()
        if environ.get(name) != value
    ]


def apply(portable: bool) -> None:
    """Put the switches of `portable` (True) or native (False) mode in this process's environment.

    Must run before torch is imported. If torch is already imported and a switch would change, raise: torch may
    have read the old value already, and a run that silently keeps native kernels would make other bytes.
    """
    diff = conflicts(portable)
    if diff and "torch" in sys.modules:
        mode = "portable" if portable else "native"
        raise PortableError(
            f"runtime.portable: cannot switch to {mode} CPU mode, torch is already imported with other settings: "
            f"{'; '.join(diff)}. Apply it before importing torch (maskcls does so at start-up), or export the "
            "variables before starting Python."
        )
    for name, value in wanted(portable).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    os.environ[MODE] = "portable" if portable else "native"


def apply_from_params(params_path: str | Path = "params.yaml") -> bool:
    """`apply` with the setting of params.yaml; returns it."""
    portable = read_setting(params_path)
    apply(portable)
    return portable


def params_path_from_argv(argv: list[str]) -> Path:
    """The `--params/-p` value of a maskcls command line (params.yaml when not given)."""
    for i, arg in enumerate(argv):
        if arg in ("--params", "-p") and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--params="):
            return Path(arg.split("=", 1)[1])
    return Path("params.yaml")


def verify() -> str:
    """After torch is imported: check that the mode this process was put in is in effect; returns ATen's ISA.

    Portable mode needs AVX2: on a CPU without it ATen falls back to its default kernels and the bytes differ,
    which must not pass unnoticed.
    """
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    mode = os.environ.get(MODE)
    if mode == "portable" and capability != CAP:
        raise PortableError(
            f"portable CPU mode needs {CAP}, but torch's CPU kernels run at {capability} "
            f"({'this CPU lacks AVX2' if capability in ('DEFAULT', 'NO AVX') else 'the cap did not take effect'}): "
            "its results cannot match other machines'. Set runtime.portable: false to run natively on this machine."
        )
    if mode == "portable" and conflicts(True):
        raise PortableError(f"portable CPU mode: switches changed after start-up: {'; '.join(conflicts(True))}")
    return capability


def describe() -> str:
    """The CPU mode of this process for logs and the ledger, e.g. `portable:AVX2` or `native:AVX512`."""
    import torch

    mode = os.environ.get(MODE) or ("portable" if not conflicts(True) else "native")
    return f"{mode}:{torch.backends.cpu.get_cpu_capability()}"


def cpu_model() -> str:
    """The processor's model name (/proc/cpuinfo on Linux)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown"


def environment(params_path: str | Path = "params.yaml") -> dict[str, str]:
    """What the bytes of this machine's train and predict stages depend on beyond code, data and params.

    cpu, cpu_mode (`portable:AVX2`, `native:AVX512`), threads (runtime.threads, 0 resolved to torch's default),
    torch, cuda, cudnn and gpu (the GPU that `runtime.device` picks here, or `none`). Run after `apply`.
    """
    import torch

    verify()
    from maskcls.params import RuntimeParams, read_yaml

    path = Path(params_path)
    runtime = (read_yaml(path).get("runtime") or {}) if path.is_file() else {}
    threads = runtime.get("threads", RuntimeParams.threads) or torch.get_num_threads()
    device = runtime.get("device", RuntimeParams.device)
    gpu = torch.cuda.get_device_name(0) if device != "cpu" and torch.cuda.is_available() else "none"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "cpu": cpu_model(),
        "cpu_mode": describe(),
        "threads": str(threads),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "cudnn": str(cudnn) if cudnn else "none",
        "gpu": gpu,
    }
