"""manifest.json: what a run directory needs to be reproduced.

Code (the user's git commit, branch and uncommitted diff), environment (package versions,
Python, platform, hardware), launch (command, working directory, start time), seeds and
determinism settings, captured once when the run starts.

Importing this module is cheap: torch, numpy and Lightning are imported only by the functions
that need them, and package versions come from installed metadata, not from imports.
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import threading
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import archlab
from archlab.atomic import write_atomic
from archlab.records.run_record import write_json_atomic

MANIFEST_FILE = "manifest.json"
DIFF_FILE = "git.diff"

# Distribution names as installed (pip names), recorded without importing the packages.
PACKAGES = (
    "torch",
    "pytorch-lightning",
    "lightning-fabric",
    "hydra-core",
    "omegaconf",
    "torchmetrics",
    "tensorboard",
    "tokenizers",
    "numpy",
    "scikit-learn",
    "pillow",
)

GIT_TIMEOUT_S = 5.0
DIFF_LIMIT_BYTES = 1 << 20  # 1 MiB: keeps a run directory small even after a huge edit
UNTRACKED_LIMIT = 200


def collect_manifest(
    seed: int,
    deterministic: bool | str,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Everything needed to rerun this process: a JSON-serialisable dict.

    `cwd` is where the user launched archlab (default: the current directory); its git
    repository, if any, is the one recorded.
    """
    cwd = Path.cwd() if cwd is None else Path(cwd)
    return {
        "archlab_version": archlab.__version__,
        "python": python_info(),
        "platform": platform.platform(),
        "command": shlex.join(sys.argv),
        "cwd": str(cwd),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "packages": package_versions(),
        "hardware": hardware_info(),
        "seeds": seeds_info(seed),
        "deterministic": determinism_info(deterministic),
        "git": git_info(cwd),
    }


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> Path:
    """Write `run_dir/manifest.json` atomically; a non-empty git diff goes to `run_dir/git.diff`.

    The diff lives in its own file so the JSON stays readable and the patch can be applied
    with `git apply`; in the JSON, `git.diff` then holds that file's name. `manifest` itself
    is not modified. Returns the path of manifest.json.
    """
    payload = dict(manifest)
    git = payload.get("git")
    if git and git.get("diff"):
        diff: str = git["diff"]
        write_atomic(run_dir / DIFF_FILE, lambda f: f.write(diff.encode()), binary=True)
        payload["git"] = {**git, "diff": DIFF_FILE}
    path = run_dir / MANIFEST_FILE
    write_json_atomic(path, payload)
    return path


# --- environment -------------------------------------------------------------------------------


def python_info() -> dict[str, str]:
    """Version and implementation, plus the interpreter path (which venv ran it)."""
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


def package_versions() -> dict[str, str | None]:
    """Installed versions from package metadata (no imports); None when not installed.

    lightning-fabric is None when only pytorch-lightning is installed: that wheel bundles its
    own copy of lightning_fabric, whose version is pytorch-lightning's.
    """
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def hardware_info() -> dict[str, Any]:
    """CPU, memory and accelerators the run saw.

    With a GPU present this initialises CUDA in the calling process (device properties need
    it), so call it where CUDA may be initialised: not before a fork-based launcher.
    """
    import torch  # here, not at the top: collecting versions must import nothing

    affinity = getattr(os, "sched_getaffinity", None)
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(affinity(0)) if affinity else os.cpu_count(),
        "memory_gib": total_memory_gib(),
        "torch_threads": torch.get_num_threads(),
        "cuda": cuda_info(),
    }


def cpu_model() -> str:
    """The first "model name" in /proc/cpuinfo (Linux), else whatever platform reports."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name":
                    return value.strip()
    except OSError:
        pass
    return platform.processor()


def total_memory_gib() -> float | None:
    """Physical memory of the machine (not a container's limit); None where sysconf lacks it."""
    try:
        pages = os.sysconf("SC_PHYS_PAGES")
        page_size = os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None
    if pages <= 0 or page_size <= 0:
        return None
    return round(pages * page_size / 2**30, 2)


def cuda_info() -> dict[str, Any] | None:
    """CUDA/cuDNN versions and each visible device; None when CUDA is unavailable."""
    import torch  # here, not at the top: collecting versions must import nothing

    if not torch.cuda.is_available():
        return None
    devices = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        devices.append(
            {
                "name": props.name,
                "total_memory_gib": round(props.total_memory / 2**30, 2),
                "capability": f"{props.major}.{props.minor}",
            }
        )
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return {
        "version": torch.version.cuda,
        "cudnn": cudnn,
        "visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "devices": devices,
    }


# --- seeds and determinism ---------------------------------------------------------------------


def seeds_info(seed: int) -> dict[str, Any]:
    """How archlab seeds its random number generators, rank by rank.

    archlab calls `pytorch_lightning.seed_everything(seed, workers=True)` on every rank with
    no rank offset, so each rank seeds Python's `random`, numpy and torch with `seed`. Its
    data loaders slice in-memory tensors in the main process, so there are no DataLoader
    workers to seed. The rank count comes from `WORLD_SIZE` (set by torchrun and by
    Lightning in the processes it launches), default 1.
    """
    world_size = _world_size()
    return {
        "global": seed,
        "world_size": world_size,
        "per_rank": {str(rank): seed for rank in range(world_size)},
        "dataloader_workers": 0,
    }


def _world_size() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def determinism_info(deterministic: bool | str) -> dict[str, Any]:
    """The requested setting and what torch and cuBLAS actually had when collected."""
    import torch  # here, not at the top: collecting versions must import nothing

    return {
        "setting": deterministic,
        "torch_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    }


# --- git ---------------------------------------------------------------------------------------


def git_info(cwd: Path) -> dict[str, Any] | None:
    """The state of the git work tree holding `cwd` (the user's project, not archlab's source).

    None when git is missing or `cwd` is not inside a work tree. `dirty` means tracked files
    (staged or not) differ from HEAD; untracked files are listed apart, capped at
    UNTRACKED_LIMIT, and their contents are not recorded. `diff` is `git diff HEAD` (`git diff`
    before the first commit), cut at DIFF_LIMIT_BYTES with a marker.
    """
    top = _git(["rev-parse", "--show-toplevel"], cwd)
    if top is None:
        return None
    root = Path(top.strip())
    commit = _git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], root)
    branch = _git(["symbolic-ref", "--short", "--quiet", "HEAD"], root)
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    untracked = _untracked(root)
    return {
        "root": str(root),
        "commit": commit.strip() if commit else None,
        "branch": branch.strip() if branch else None,  # None: detached HEAD
        "dirty": bool(status),
        "diff": _diff(root, has_commit=bool(commit)),
        "untracked": untracked[:UNTRACKED_LIMIT],
        "untracked_count": len(untracked),
    }


def _git_env() -> dict[str, str]:
    # No index.lock from `git status`: never collide with git commands the user is running.
    return {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}


def _git(args: list[str], cwd: Path) -> str | None:
    """stdout of `git args` run in `cwd`, or None if it fails, times out or git is missing."""
    try:
        result = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=_git_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.decode("utf-8", errors="replace")


def _untracked(root: Path) -> list[str]:
    """Untracked, non-ignored files, relative to the repository root."""
    out = _git(["ls-files", "--others", "--exclude-standard", "-z"], root)
    return [p for p in out.split("\0") if p] if out else []


def _diff(root: Path, has_commit: bool) -> str | None:
    """A plain patch of tracked changes, applicable with `git apply`; None if git failed."""
    args = ["diff", "HEAD"] if has_commit else ["diff"]
    # Fixed output format whatever the user's config: no colour, no external or textconv
    # drivers, standard a/ b/ prefixes.
    args += ["--no-color", "--no-ext-diff", "--no-textconv", "--src-prefix=a/", "--dst-prefix=b/"]
    capped = _git_capped(args, root, DIFF_LIMIT_BYTES)
    if capped is None:
        return None
    data, truncated = capped
    text = data.decode("utf-8", errors="replace")
    if truncated:
        text += f"\n[archlab: diff truncated at {DIFF_LIMIT_BYTES} bytes]\n"
    return text


def _git_capped(args: list[str], cwd: Path, limit: int) -> tuple[bytes, bool] | None:
    """Like `_git`, but reads at most `limit` bytes: a huge diff is cut without reading it all.

    Returns (output, truncated), or None if git fails, times out or is missing.
    """
    try:
        proc = subprocess.Popen(
            ["git", *args],
            cwd=cwd,
            env=_git_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return None
    timed_out = threading.Event()

    def stop() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(GIT_TIMEOUT_S, stop)
    timer.start()
    try:
        assert proc.stdout is not None
        with proc.stdout:
            data = proc.stdout.read(limit + 1)
            truncated = len(data) > limit
            if truncated:
                proc.kill()
        returncode = proc.wait()
    finally:
        timer.cancel()
    if timed_out.is_set():
        return None
    if truncated:
        return data[:limit], True
    return (data, False) if returncode == 0 else None
