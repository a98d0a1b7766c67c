"""Build hook: the source commit travels inside the package (pyproject.toml holds the rest).

``pip install .`` copies the sources into site-packages, where no git history is left to ask,
so a result produced by an installed lae-bench would record no commit. At build time
``bench/built_from.py`` is written into the built package (and into an sdist, so that a
wheel built from the sdist keeps it) with the commit, the dirty flag and the build time;
``bench.sweep.env.git_state`` reads it when the code does not run from a checkout.
"""
from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent
BUILD_INFO = Path("bench") / "built_from.py"


def source_commit() -> tuple[str, bool] | None:
    """(commit, dirty) of the checkout being built; None outside one or without git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(HERE), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
    try:
        if Path(git("rev-parse", "--show-toplevel")).resolve() != HERE:
            return None
        return git("rev-parse", "HEAD"), bool(git("status", "--porcelain"))
    except (OSError, subprocess.SubprocessError):
        return None


def write_build_info(package_root: Path) -> None:
    """Write bench/built_from.py under ``package_root``; an existing one (a wheel built from
    an sdist, where no git is left) is kept."""
    found = source_commit()
    target = package_root / BUILD_INFO
    if found is None:
        return
    commit, dirty = found
    built = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text('"""Written by setup.py at build time: the source this copy came from."""\n'
                      f"COMMIT = {commit!r}\nDIRTY = {dirty!r}\nBUILT_UTC = {built!r}\n")


class BuildPyWithCommit(build_py):
    def run(self) -> None:
        super().run()
        write_build_info(Path(self.build_lib))


class SdistWithCommit(sdist):
    def make_release_tree(self, base_dir, files) -> None:
        super().make_release_tree(base_dir, files)
        write_build_info(Path(base_dir))


if __name__ == "__main__":     # setuptools runs this file as __main__; tests import it
    setup(cmdclass={"build_py": BuildPyWithCommit, "sdist": SdistWithCommit})
