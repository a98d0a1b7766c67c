"""Provenance: the machine, GPU, packages, BLAS and source commit a result was produced with.

Every fact is best-effort: what cannot be found is None, never an error, so a run on an unusual
machine still records everything else.
"""
from __future__ import annotations

import ctypes
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from lae_core import backend as be

PACKAGES = ("lae-bench", "numpy", "scipy", "pandas", "array-api-compat", "pyyaml", "tqdm",
            "numba", "matplotlib", "cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy",
            "threadpoolctl", "array-api-strict")
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def collect(xp: Any) -> dict[str, Any]:
    """Everything a manifest records: machine, gpu, packages, blas and git."""
    return {"machine": machine(), "gpu": be.device_facts(xp) or None, "packages": packages(),
            "blas": blas(), "git": git_state()}


def machine() -> dict[str, Any]:
    """CPU model, logical cores (and those this process may use), RAM, OS, Python."""
    return {"cpu_model": cpu_model(), "cores": os.cpu_count(),
            "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "ram_bytes": _ram_bytes(), "os": platform.platform(),
            "python": platform.python_version()}


cpu_model = be.cpu_model     # the CPU's marketing name (the calibration cache keys by it too)


def _ram_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX
        return None


def packages() -> dict[str, str]:
    """Installed versions of the packages that shape results (absent ones left out)."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def blas() -> dict[str, Any]:
    """NumPy's BLAS (name, version, configuration) and its thread count.

    threadpoolctl, when installed, reads the live thread count from the loaded library;
    otherwise the usual environment variables are reported (None: the library's default,
    usually one thread per core).
    """
    info: dict[str, Any] = {}
    try:
        build = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info = {key: build.get(key) for key in ("name", "version", "openblas configuration")}
    except Exception:  # show_config's layout is not a stable API
        pass
    info["threads"] = _blas_threads()
    info["thread_variables"] = {v: os.environ[v] for v in THREAD_VARIABLES if v in os.environ}
    return info


def _blas_threads() -> int | None:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return _openblas_threads()
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    return pools[0]["num_threads"] if pools else None


OPENBLAS_THREAD_GETTERS = ("openblas_get_num_threads", "openblas_get_num_threads64_",
                           "scipy_openblas_get_num_threads64_")


def _openblas_threads() -> int | None:
    """Ask the OpenBLAS that NumPy loaded (Linux, no threadpoolctl): the live thread count."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
        libraries = {line.split()[-1] for line in maps if "openblas" in line.lower()}
        for library in libraries:
            lib = ctypes.CDLL(library)
            for symbol in OPENBLAS_THREAD_GETTERS:
                if hasattr(lib, symbol):
                    return int(getattr(lib, symbol)())
    except OSError:
        pass
    return None


def git_state(source: Path = Path(__file__).resolve().parents[2]) -> dict[str, Any] | None:
    """Commit and dirty flag of the lae-bench source: asked of git when the code runs from a
    checkout ("source": "checkout"), else read from ``bench/built_from.py``, which setup.py
    writes at build time ("source": "build", with "built_utc"; a ``pip install .``) and
    finally from ``.gpu-wheels/prepared_from.json``, which ``gpu_check.sh --prepare`` writes
    for a tree that travels to a GPU machine without .git ("source": "prepared"). None when
    none is there (or git is missing)."""
    def git(*args: str) -> str:   # never the index lock: a user's own git command may need it
        return subprocess.run(["git", "--no-optional-locks", "-C", str(source), *args],
                              capture_output=True, text=True, timeout=10, check=True
                              ).stdout.strip()
    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() == source:
            return {"commit": git("rev-parse", "HEAD"),
                    "dirty": bool(git("status", "--porcelain")), "source": "checkout"}
        # else: installed inside some other repository (e.g. a venv in a checkout)
    except (OSError, subprocess.SubprocessError):
        pass
    return build_info() or prepared_info(source)


PREPARED_FROM = Path(".gpu-wheels") / "prepared_from.json"


def prepared_info(source: Path) -> dict[str, Any] | None:
    """The commit ``gpu_check.sh --prepare`` recorded beside the wheels it carries."""
    try:
        facts = json.loads((source / PREPARED_FROM).read_text())
        return {"commit": str(facts["commit"]), "dirty": bool(facts["dirty"]),
                "source": "prepared", "prepared_utc": facts.get("prepared_utc")}
    except (OSError, ValueError, KeyError, TypeError):
        return None
def build_info() -> dict[str, Any] | None:
    """The commit captured when this copy was built (setup.py), None for a source checkout."""
    try:
        from .. import built_from as info  # type: ignore[attr-defined]
    except ImportError:
        return None
    return {"commit": info.COMMIT, "dirty": info.DIRTY, "source": "build",
            "built_utc": info.BUILT_UTC}


def recorded_cpu_model(facts: Mapping[str, Any]) -> str:
    """The CPU model that ``facts`` record (a manifest, or ``collect``'s answer); manifests
    written by hand or by other tools may name it ``cpu`` or ``processor``."""
    machine = facts.get("machine") or {}
    for key in ("cpu_model", "cpu", "processor"):
        if machine.get(key):
            return str(machine[key])
    return "unknown CPU"


def device_name(facts: dict[str, Any]) -> str:
    """What a record's ``device`` says: the GPU's name on a GPU, else the CPU model."""
    return (facts.get("gpu") or {}).get("gpu_name") or facts["machine"]["cpu_model"]
