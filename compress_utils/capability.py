"""Which matrix-product dtypes are fast on this device: fp32, bf16, int8 (``torch._int_mm``, signed x signed) and
int8_u8s8 (oneDNN's unsigned x signed quantised linear).

The same PyTorch build can be 7x faster in bf16 than in fp32 (a CPU with AVX-512 BF16 or AMX) or 80x slower (an
AVX2-only CPU, where bf16 is emulated), and ``torch._int_mm`` ranges from 15x faster to 50x slower than fp32, while
oneDNN's u8 x s8 product stays ~2x faster than fp32 on the AVX2 CPU where ``_int_mm`` is slow. ISA
flags alone do not tell which (oneDNN/MKL may be capped by environment variables, PyTorch may lack a kernel), so
:func:`probe` times one small product per dtype on one thread (well under a second even where a dtype is slow) and
keeps the answer for the rest of the process. Everything the library decides about dtypes goes through it:
:func:`resolve_bf16` for ``bf16`` settings (``None``/``"auto"`` = the probe's answer) and :func:`fast_int8` for
quantised kernels; benchmarks write :func:`probe`'s dict into their JSON so a number says where it was measured.

Example:
    >>> from compress_utils import probe, resolve_bf16
    >>> info = probe()
    >>> sorted(info["fast"])
    ['bf16', 'fp32', 'int8', 'int8_u8s8']
    >>> resolve_bf16(False)
    False
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time

import torch

logger = logging.getLogger(__name__)

# (M, K, N) of the timed product: big enough that a kernel's per-element speed dominates its call overhead, small
# enough that the slowest measured case (bf16 on an AVX2 CPU, ~60x fp32) stays ~50 ms
PROBE_SHAPE = (128, 256, 1024)
WARMUPS = 2  # untimed rounds: first calls create oneDNN primitives / JIT kernels (10x slower than later calls)
REPEATS = 5  # best of 5 interleaved rounds: the machine is shared, the minimum is the least disturbed
FAST_RATIO = 1.0  # a dtype is "fast" when its product takes at most this multiple of the fp32 time

# CPU flags worth recording (names as in /proc/cpuinfo); the others say nothing about matmul speed
ISA_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "asimddp",
    "bf16",
    "i8mm",
    "sve",
)
# environment variables that cap the ISA the kernels use (and so change the answer on the same CPU)
ISA_ENV = ("ATEN_CPU_CAPABILITY", "DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")

_CACHE: dict[str, dict] = {}
_LOCK = threading.Lock()


def _device_key(device) -> str:
    if device is None:
        return "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda:{device.index if device.index is not None else torch.cuda.current_device()}"
    return device.type


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``'s ``model name``, else :func:`platform.processor`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_flags() -> list[str]:
    """The subset of :data:`ISA_FLAGS` this CPU reports (empty where ``/proc/cpuinfo`` is missing)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("flags", "features")):
                    present = set(line.split(":", 1)[1].split())
                    return [flag for flag in ISA_FLAGS if flag in present]
    except OSError:
        pass
    return []


def _interleaved_best(functions: dict, warmups: int = WARMUPS, repeats: int = REPEATS) -> dict[str, float | None]:
    """Best seconds per call of each function, timed in interleaved rounds (``None`` where a call raises)."""
    best: dict[str, float | None] = {name: float("inf") for name in functions}
    for round_index in range(warmups + repeats):
        for name, function in functions.items():
            if best[name] is None:
                continue
            start = time.perf_counter()
            try:
                function()
            except (RuntimeError, NotImplementedError) as error:
                logger.debug("No kernel for the %s product: %s", name, error)
                best[name] = None
                continue
            if round_index >= warmups:  # first calls create and JIT kernels
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def _time_products(device: torch.device) -> dict[str, float | None]:
    """Seconds per ``PROBE_SHAPE`` product in fp32, bf16 and int8 (``None`` where the dtype has no kernel)."""
    m, k, n = PROBE_SHAPE
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(m, k, generator=generator).to(device)
    b = torch.randn(k, n, generator=generator).to(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def product(x, y, matmul):
        def run():
            matmul(x, y)
            sync()

        return run

    functions = {"fp32": product(a, b, torch.mm), "bf16": product(a.bfloat16(), b.bfloat16(), torch.mm)}
    if hasattr(torch, "_int_mm"):
        a8 = a.clamp(-1, 1).mul(127).round().to(torch.int8)
        b8 = b.clamp(-1, 1).mul(127).round().to(torch.int8)
        functions["int8"] = product(a8, b8, torch._int_mm)
    u8s8 = _u8s8_product(a, b) if device.type == "cpu" else None
    if u8s8 is not None:
        functions["int8_u8s8"] = u8s8
    timings = _interleaved_best(functions)
    timings.setdefault("int8", None)
    timings.setdefault("int8_u8s8", None)
    return timings


def _u8s8_product(a: torch.Tensor, b: torch.Tensor):
    """oneDNN's quantised linear of uint8 ``a`` and int8 ``b`` with a float32 output (what ``xtc_hf``'s ``onednn``
    kernel runs), or ``None`` where this build has no such op."""
    onednn = torch.ops.onednn
    if not (torch.backends.mkldnn.is_available() and hasattr(onednn, "qlinear_pointwise")):
        return None
    a8 = a.clamp(-1, 1).mul(127).round().add(128).to(torch.uint8)
    try:
        weight = onednn.qlinear_prepack(b.t().clamp(-1, 1).mul(127).round().to(torch.int8).contiguous(), None)
    except (RuntimeError, TypeError):
        return None
    ones, zeros = torch.ones(b.shape[1]), torch.zeros(b.shape[1], dtype=torch.int64)
    return lambda: onednn.qlinear_pointwise(
        a8, 1.0, 128, weight, ones, zeros, None, 1.0, 0, torch.float32, "none", [], ""
    )


def _measure(key: str) -> dict:
    device = torch.device(key)
    info: dict = {
        "device": key,
        "torch_version": torch.__version__,
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "isa_flags": cpu_flags(),
        "isa_env": {name: os.environ[name] for name in ISA_ENV if name in os.environ},
        "probe_shape": list(PROBE_SHAPE),
    }
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        info["cuda_name"] = torch.cuda.get_device_name(device)
        info["cuda_capability"] = f"{major}.{minor}"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # per-core speed: what a single-threaded kernel choice needs, independent of load
    try:
        timings = _time_products(device)
    finally:
        torch.set_num_threads(threads)
    info["timings_ms"] = {name: None if t is None else round(t * 1e3, 4) for name, t in timings.items()}
    info["fast"] = classify(timings)
    info["fastest_dtype"] = "bf16" if info["fast"]["bf16"] and timings["bf16"] < timings["fp32"] else "fp32"
    return info


def classify(timings: dict[str, float | None]) -> dict[str, bool]:
    """Which dtypes are fast, from seconds per product: a dtype is fast when it has a kernel and takes at most
    ``FAST_RATIO`` times the fp32 time.

    Example:
        >>> classify({"fp32": 1.0, "bf16": 0.15, "int8": 40.0, "int8_u8s8": 0.5})
        {'fp32': True, 'bf16': True, 'int8': False, 'int8_u8s8': True}
    """
    fp32 = timings.get("fp32")
    if fp32 is None:
        raise ValueError(f"`timings` must hold an fp32 time to compare against, got {timings!r}.")
    return {
        "fp32": True,
        "bf16": timings.get("bf16") is not None and timings["bf16"] <= FAST_RATIO * fp32,
        "int8": timings.get("int8") is not None and timings["int8"] <= FAST_RATIO * fp32,
        "int8_u8s8": timings.get("int8_u8s8") is not None and timings["int8_u8s8"] <= FAST_RATIO * fp32,
    }


def probe(device=None, refresh: bool = False) -> dict:
    """What this device is and which of fp32 / bf16 / int8 matrix products are fast on it (JSON-serialisable).

    Measured once per process and device (``refresh=True`` measures again). Keys: ``device``, ``torch_version``,
    ``cpu_model``, ``cpu_capability`` (``torch.backends.cpu.get_cpu_capability()``), ``isa_flags``, ``isa_env`` (ISA
    caps set in the environment), ``probe_shape``, ``timings_ms`` (best of 5, one thread; ``None`` = no kernel),
    ``fast`` (``{"fp32", "bf16", "int8", "int8_u8s8"}`` -> bool), ``fastest_dtype`` (``"bf16"`` or ``"fp32"``) and, on GPUs,
    ``cuda_name`` and ``cuda_capability``.

    Example:
        >>> info = probe("cpu")
        >>> info["fast"]["fp32"], info["fastest_dtype"] in ("fp32", "bf16")
        (True, True)
    """
    key = _device_key(device)
    with _LOCK:
        if refresh or key not in _CACHE:
            _CACHE[key] = _measure(key)
            info = _CACHE[key]
            logger.info(
                "Capability of %s (%s, %s): fast %s; ms per %s product fp32/bf16/int8/int8_u8s8 = %s",
                key,
                info["cpu_model"],
                info["cpu_capability"],
                [name for name, fast in info["fast"].items() if fast],
                "x".join(map(str, PROBE_SHAPE)),
                list(info["timings_ms"].values()),
            )
        return dict(_CACHE[key])


def describe(info: dict | None) -> str:
    """One line saying where a result was measured, from a :func:`probe` dict (``"unknown machine"`` for results
    written before the probe existed). Environment caps (an emulated capability) are named.

    Example:
        >>> describe({"cpu_model": "AMD EPYC", "cpu_capability": "AVX2", "fast": {"fp32": True, "bf16": False,
        ...           "int8": True}, "isa_env": {"ATEN_CPU_CAPABILITY": "avx2"}})
        'AMD EPYC, PyTorch CPU capability AVX2 (capped by ATEN_CPU_CAPABILITY=avx2), fast: fp32, int8'
    """
    if not info:
        return "unknown machine (measured before the capability probe was recorded)"
    text = f"{info.get('cpu_model', 'unknown CPU')}, PyTorch CPU capability {info.get('cpu_capability', '?')}"
    if info.get("cuda_name"):
        text += f", GPU {info['cuda_name']} (compute capability {info.get('cuda_capability')})"
    caps = info.get("isa_env") or {}
    if caps:
        text += " (capped by " + ", ".join(f"{name}={value}" for name, value in caps.items()) + ")"
    fast = [name for name, is_fast in (info.get("fast") or {}).items() if is_fast]
    return text + (f", fast: {', '.join(fast)}" if fast else "")


def resolve_bf16(setting, device=None) -> bool:
    """A ``bf16`` setting as a bool: ``True``/``False`` as given, ``None``/``"auto"`` = bf16 is fast here.

    Example:
        >>> resolve_bf16(True), resolve_bf16("auto") == probe()["fast"]["bf16"]
        (True, True)
    """
    if setting is None or setting == "auto":
        return bool(probe(device)["fast"]["bf16"])
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"`bf16` must be True, False, None or 'auto', got {setting!r}.")


def fast_int8(device=None) -> bool:
    """True where ``torch._int_mm`` is no slower than an fp32 product of the same shape on ``device``.

    Example:
        >>> isinstance(fast_int8(), bool)
        True
    """
    return bool(probe(device)["fast"]["int8"])


def fastest_dtype(device=None) -> torch.dtype:
    """``torch.bfloat16`` where bf16 products beat fp32 on ``device``, else ``torch.float32``.

    Example:
        >>> fastest_dtype() in (torch.float32, torch.bfloat16)
        True
    """
    return torch.bfloat16 if probe(device)["fastest_dtype"] == "bf16" else torch.float32


__all__ = [
    "classify",
    "cpu_flags",
    "cpu_model",
    "describe",
    "fast_int8",
    "fastest_dtype",
    "probe",
    "resolve_bf16",
]
