"""manifest.json: the git state of the user's project, package versions, seeds as Lightning
derives them, and an atomic write that keeps the JSON readable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch

from archlab.records import manifest as mf


@pytest.fixture(autouse=True)
def isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Git sees neither the user's config nor any repository above tmp_path."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def new_repo(path: Path) -> Path:
    path.mkdir()
    git(path, "-c", "init.defaultBranch=main", "init", "-q")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one commit: a.txt and pkg/b.py."""
    root = new_repo(tmp_path / "repo")
    (root / "a.txt").write_text("one\n")
    (root / "pkg").mkdir()
    (root / "pkg" / "b.py").write_text("x = 1\n")
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


def test_clean_repo(repo: Path, tmp_path: Path) -> None:
    info = mf.git_info(repo)
    assert info is not None
    assert info["commit"] == git(repo, "rev-parse", "HEAD")
    assert info["branch"] == "main"
    assert info["dirty"] is False
    assert info["diff"] == ""
    assert info["untracked"] == []

    path = mf.write_manifest(tmp_path / "run", {"git": info})
    assert sorted(p.name for p in path.parent.iterdir()) == ["manifest.json"]


def test_dirty_repo_seen_from_a_subdirectory(repo: Path, tmp_path: Path) -> None:
    (repo / "a.txt").write_text("two\n")
    (repo / "new.txt").write_text("not added\n")
    manifest = mf.collect_manifest(seed=7, deterministic=False, cwd=repo / "pkg")
    info = manifest["git"]

    assert manifest["cwd"] == str(repo / "pkg")
    assert Path(info["root"]).resolve() == repo.resolve()
    assert info["commit"] == git(repo, "rev-parse", "HEAD")
    assert info["dirty"] is True
    assert info["untracked"] == ["new.txt"]  # relative to the root, not to cwd
    assert info["untracked_count"] == 1
    assert "-one\n+two\n" in info["diff"]

    run_dir = tmp_path / "run"
    path = mf.write_manifest(run_dir, manifest)
    assert path == run_dir / "manifest.json"
    assert sorted(p.name for p in run_dir.iterdir()) == ["git.diff", "manifest.json"]  # no temps
    patch = (run_dir / "git.diff").read_text()
    assert patch == info["diff"]
    assert "diff --git a/a.txt b/a.txt" in patch

    written = json.loads(path.read_text())
    assert written["git"]["diff"] == "git.diff"
    assert written == json.loads(json.dumps({**manifest, "git": {**info, "diff": "git.diff"}}))
    assert manifest["git"]["diff"] == patch  # the caller's dict is left as it was

    # The recorded patch restores the working tree on a fresh checkout of the commit.
    git(repo, "stash", "-q")
    git(repo, "apply", str(run_dir / "git.diff"))
    assert (repo / "a.txt").read_text() == "two\n"


def test_staged_changes_count_as_dirty(repo: Path) -> None:
    (repo / "c.txt").write_text("staged\n")
    git(repo, "add", "c.txt")
    info = mf.git_info(repo)
    assert info is not None
    assert info["dirty"] is True
    assert "+staged" in info["diff"]


def test_long_diff_is_truncated_with_a_marker(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mf, "DIFF_LIMIT_BYTES", 100)
    (repo / "a.txt").write_text("changed line\n" * 1000)
    info = mf.git_info(repo)
    assert info is not None
    head, marker = info["diff"][:100], info["diff"][100:]
    assert head.startswith("diff --git a/a.txt b/a.txt")
    assert marker == "\n[archlab: diff truncated at 100 bytes]\n"


def test_untracked_list_is_capped(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mf, "UNTRACKED_LIMIT", 3)
    for i in range(5):
        (repo / f"u{i}.txt").write_text("")
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "ignored.log").write_text("")
    info = mf.git_info(repo)
    assert info is not None
    assert len(info["untracked"]) == 3
    assert info["untracked_count"] == 6  # u0..u4 and .gitignore; ignored.log is ignored


def test_repo_without_commits(tmp_path: Path) -> None:
    root = new_repo(tmp_path / "fresh")
    (root / "a.txt").write_text("one\n")
    info = mf.git_info(root)
    assert info is not None
    assert info["commit"] is None
    assert info["branch"] == "main"
    assert info["untracked"] == ["a.txt"]
    assert info["diff"] == ""


def test_outside_any_repo(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert mf.collect_manifest(seed=0, deterministic=False, cwd=plain)["git"] is None


def test_git_missing(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))
    assert mf.git_info(repo) is None


def test_packages_from_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mf, "PACKAGES", (*mf.PACKAGES, "archlab-no-such-package"))
    versions = mf.package_versions()
    assert torch.__version__.startswith(versions["torch"])
    assert versions["pytorch-lightning"] is not None
    assert versions["archlab-no-such-package"] is None


def test_collecting_versions_imports_nothing() -> None:
    """Versions come from metadata: asking for them must not import the packages."""
    code = (
        "import sys; from archlab.records.manifest import package_versions; package_versions(); "
        "heavy = {'torch', 'pytorch_lightning', 'sklearn', 'tensorboard', 'numpy', 'PIL'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_launch_and_environment(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["archlab-train", "model=cnn", "data.root=my data"])
    before = datetime.now(timezone.utc).replace(microsecond=0)  # started_at has milliseconds
    manifest = mf.collect_manifest(seed=3, deterministic="warn", cwd=repo)
    assert manifest["command"] == "archlab-train model=cnn 'data.root=my data'"
    assert before <= datetime.fromisoformat(manifest["started_at"]) <= datetime.now(timezone.utc)
    assert manifest["python"]["version"] == ".".join(map(str, sys.version_info[:3]))
    hardware = manifest["hardware"]
    assert hardware["cpu"]
    assert hardware["cpu_count"] >= 1
    assert hardware["torch_threads"] == torch.get_num_threads()
    # The GPUs torch sees, each described; none invented on a machine without one.
    if torch.cuda.is_available():
        assert len(hardware["cuda"]["devices"]) == torch.cuda.device_count()
    else:
        assert hardware["cuda"] is None


def test_determinism_as_torch_has_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    was = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        info = mf.determinism_info(True)
    finally:
        torch.use_deterministic_algorithms(was)
    assert info == {
        "setting": True,
        "torch_deterministic_algorithms": True,
        "cublas_workspace_config": ":4096:8",
    }


def test_every_rank_gets_the_global_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "3")
    seeds = mf.seeds_info(11)
    assert seeds["global"] == 11 and seeds["world_size"] == 3
    assert seeds["per_rank"] == {"0": 11, "1": 11, "2": 11}


def test_manifest_round_trips_through_json(repo: Path, tmp_path: Path) -> None:
    (repo / "a.txt").write_text("two\n")
    manifest = mf.collect_manifest(seed=2**32 - 1, deterministic=True, cwd=repo)
    path = mf.write_manifest(tmp_path / "run", manifest)
    text = path.read_text()
    loaded = json.loads(text)
    assert loaded == json.loads(
        json.dumps({**manifest, "git": {**manifest["git"], "diff": "git.diff"}})
    )
    assert loaded["seeds"]["per_rank"]["0"] == 2**32 - 1
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files
