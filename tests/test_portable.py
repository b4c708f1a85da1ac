"""Portable CPU mode (runtime.portable): the instruction-set cap is in effect in the stages' processes, makes the
same bytes whatever the CPU offers above it, and refuses to be switched on too late.

Every check runs in fresh processes: the switches only count before torch is imported, and this test process
imported torch already (conftest).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from maskcls import params, portable
from maskcls.errors import ParamsError

MASKCLS = str(Path(sys.executable).parent / "maskcls")
SWITCH_NAMES = (*portable.SWITCHES, portable.MODE)

# A few SGD steps of a tiny conv net on fixed data, 2 threads: convolutions (oneDNN), batch norm and pooling
# (ATen's vectorised kernels), a linear layer (BLAS). Prints md5s of the trained weights and of the logits.
TINY_TRAINING = """
import hashlib, json, os, sys
import torch, torch.nn as nn, torch.nn.functional as F
torch.set_num_threads(2)
torch.manual_seed(0)
net = nn.Sequential(
    nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
    nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Conv2d(16, 32, 1), nn.BatchNorm2d(32), nn.SiLU(),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 10),
)
g = torch.Generator().manual_seed(1)
x = torch.randn(32, 3, 24, 24, generator=g)
y = torch.randint(0, 10, (32,), generator=g)
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
for _ in range(5):
    opt.zero_grad()
    F.cross_entropy(net(x), y).backward()
    opt.step()
with torch.no_grad():
    logits = net.eval()(x)
weights = b"".join(p.detach().contiguous().numpy().tobytes() for p in net.state_dict().values())
print(json.dumps({
    "capability": torch.backends.cpu.get_cpu_capability(),
    "weights": hashlib.md5(weights).hexdigest(),
    "logits": hashlib.md5(logits.numpy().tobytes()).hexdigest(),
}))
"""

# What a stage process does first (cli.main), then the training above.
UNDER_PARAMS = "import sys; from maskcls import portable; portable.apply_from_params(sys.argv[1])\n" + TINY_TRAINING

# Lower than the portable cap in every library: what a smaller CPU would leave torch.
LOWER = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "DNNL_MAX_CPU_ISA": "SSE41",
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
}


def clean_env(**extra: str) -> dict:
    """This environment without any of the switches (as a shell that never heard of them), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in SWITCH_NAMES}
    return env | {"OMP_NUM_THREADS": "2"} | extra


def py(code: str, *args: str, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def last_json(result: subprocess.CompletedProcess) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


def write_params(path: Path, portable_on: bool) -> Path:
    data = params.read_yaml(Path(__file__).resolve().parents[1] / "params.yaml")
    data["runtime"]["portable"] = portable_on
    params.dump(data, path)
    return path


@pytest.fixture(scope="module")
def native_capability() -> str:
    """What torch picks on this machine with no cap at all."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    return py(code, env=clean_env()).stdout.strip()


# --- (a) the switches are in effect in a stage's process ---------------------------------------------------


@pytest.mark.parametrize("portable_on", [True, False], ids=["portable", "native"])
def test_the_maskcls_command_runs_torch_under_the_mode_of_params(tmp_path, native_capability, portable_on):
    """`maskcls env` goes through the same start-up as `maskcls train`: its torch reports the mode in effect."""
    path = write_params(tmp_path / "params.yaml", portable_on)
    # A shell that exported the other mode's switches must not leak into the stage.
    env = clean_env(**(dict.fromkeys(portable.SWITCHES, "avx512") if portable_on else portable.SWITCHES))
    result = subprocess.run([MASKCLS, "env", "--params", str(path)], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    fingerprint = last_json(result)
    expected = f"portable:{portable.CAP}" if portable_on else f"native:{native_capability}"
    assert fingerprint["cpu_mode"] == expected
    assert fingerprint["threads"] == str(params.load(path).runtime.threads)


def test_loader_workers_inherit_the_cap(tmp_path):
    """DataLoader workers (spawned: a fresh interpreter that imports torch again) run under the same switches."""
    path = write_params(tmp_path / "params.yaml", True)
    code = """
import os, sys
from maskcls import portable
portable.apply_from_params(sys.argv[1])
import torch
from torch.utils.data import DataLoader, Dataset

class Probe(Dataset):
    def __len__(self):
        return 2
    def __getitem__(self, i):
        return torch.backends.cpu.get_cpu_capability() + "|" + "|".join(os.environ.get(k, "-") for k in sys.argv[2:])

if __name__ == "__main__":
    loader = DataLoader(Probe(), batch_size=None, num_workers=2, multiprocessing_context="spawn")
    print("\\n".join(loader))
"""
    script = tmp_path / "probe.py"
    script.write_text(code)
    result = subprocess.run(
        [sys.executable, str(script), str(path), *portable.SWITCHES], capture_output=True, text=True, env=clean_env()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = "|".join([portable.CAP, *portable.SWITCHES.values()])
    assert result.stdout.split() == [expected, expected]


def test_library_dispatch_follows_the_switches(tmp_path):
    """The libraries honour the switches: oneDNN and MKL say which ISA and reproducibility branch they use."""
    path = write_params(tmp_path / "params.yaml", True)
    code = UNDER_PARAMS
    result = py(code, str(path), env=clean_env(ONEDNN_VERBOSE="1", MKL_VERBOSE="1"))
    out = result.stdout
    assert "onednn_verbose,v1,info,cpu,isa:Intel AVX2" in out
    assert "CNR:COMPATIBLE,STRICT" in out  # MKL's GEMMs ran in the cross-vendor reproducible branch
    assert ",jit:avx2," in out and "jit:avx512" not in out and "amx" not in out.lower()


# --- (b) same bytes under different native capabilities -------------------------------------------------------


def test_portable_mode_gives_the_same_bytes_under_a_lower_native_capability(tmp_path, native_capability):
    path = write_params(tmp_path / "params.yaml", True)
    # The computation does tell instruction sets apart: without maskcls, this CPU's kernels and the lowest ones
    # give other bytes. (Otherwise the comparison below would prove nothing.)
    full = last_json(py(TINY_TRAINING, env=clean_env()))
    lowest = last_json(py(TINY_TRAINING, env=clean_env(**LOWER)))
    assert (full["capability"], lowest["capability"]) == (native_capability, "DEFAULT")
    assert full["weights"] != lowest["weights"]

    on_this_cpu = last_json(py(UNDER_PARAMS, str(path), env=clean_env()))
    on_a_smaller_cpu = last_json(py(UNDER_PARAMS, str(path), env=clean_env(**LOWER)))
    assert on_this_cpu["capability"] == on_a_smaller_cpu["capability"] == portable.CAP
    assert on_this_cpu == on_a_smaller_cpu


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("qemu-x86_64"), reason="needs qemu-x86_64 (apt install qemu-user)")
def test_portable_mode_gives_the_same_bytes_on_an_emulated_avx2_cpu(tmp_path):
    """An emulated Haswell (no AVX-512, other cache sizes in CPUID): the libraries' own detection sees another
    machine, and the portable bytes are still this machine's."""
    path = write_params(tmp_path / "params.yaml", True)
    here = last_json(py(UNDER_PARAMS, str(path), env=clean_env()))
    cmd = ["qemu-x86_64", "-cpu", "Haswell", sys.executable, "-c", UNDER_PARAMS, str(path)]
    result = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert last_json(result) == here


# --- (c) too late is an error -------------------------------------------------------------------------------------


def test_switching_after_torch_was_imported_is_an_error():
    code = "import torch\nfrom maskcls import portable\nportable.apply(True)\n"
    result = py(code, env=clean_env(), check=False)
    assert result.returncode != 0
    assert "PortableError" in result.stderr and "torch is already imported" in result.stderr
    assert "ATEN_CPU_CAPABILITY=<unset> (needs avx2)" in result.stderr


def test_switching_back_to_native_after_torch_was_imported_is_an_error():
    code = "import torch\nfrom maskcls import portable\nportable.apply(False)\n"
    result = py(code, env=clean_env(**portable.SWITCHES), check=False)
    assert result.returncode != 0 and "cannot switch to native CPU mode" in result.stderr


def test_the_same_mode_again_after_torch_was_imported_is_fine():
    """A process started with the switches in place (a loader worker, a child) may apply the same mode."""
    code = "import torch\nfrom maskcls import portable\nportable.apply(True)\nportable.verify()\nprint('ok')\n"
    assert py(code, env=clean_env(**portable.SWITCHES)).stdout.strip() == "ok"


def test_the_error_leaves_the_environment_alone(monkeypatch):
    assert "torch" in sys.modules  # conftest imported it
    for name in SWITCH_NAMES:
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    with pytest.raises(portable.PortableError, match="torch is already imported"):
        portable.apply(True)
    assert dict(os.environ) == before


def test_the_cli_reports_the_error_and_exits(tmp_path):
    """`maskcls` turns it into a one-line error, like any other: here a params file asking for a non-boolean."""
    path = tmp_path / "params.yaml"
    path.write_text("runtime:\n  portable: 'yes'\n")
    result = subprocess.run([MASKCLS, "env", "--params", str(path)], capture_output=True, text=True, env=clean_env())
    assert result.returncode == 2
    assert "runtime.portable: expected true or false" in result.stderr


# --- the setting ----------------------------------------------------------------------------------------------


def test_the_setting_is_read_without_torch_and_defaults_to_portable(tmp_path):
    path = tmp_path / "params.yaml"
    assert portable.read_setting(path) is True  # no file
    path.write_text("seed: 1\n")
    assert portable.read_setting(path) is True  # no section
    path.write_text("runtime:\n  portable: false\n")
    assert portable.read_setting(path) is False
    code = "import sys; from maskcls import portable; portable.read_setting(sys.argv[1]); print('torch' in sys.modules)"
    assert py(code, str(path), env=clean_env()).stdout.strip() == "False"


def test_params_know_the_section():
    assert params.from_dict({}).runtime.portable is True
    assert params.from_dict({"runtime": {"portable": False}}).runtime.portable is False
    with pytest.raises(ParamsError, match="runtime.portible: unknown key; did you mean 'portable'"):
        params.from_dict({"runtime": {"portible": False}})


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "params.yaml"),
        (["train", "--params", "p.yaml"], "p.yaml"),
        (["env", "-p", "q.yaml"], "q.yaml"),
        (["train", "--params=r.yaml"], "r.yaml"),
    ],
)
def test_the_params_path_comes_from_the_command_line(argv, expected):
    assert portable.params_path_from_argv(argv) == Path(expected)
