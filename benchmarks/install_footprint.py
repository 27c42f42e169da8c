"""What `pip install` of the plugin alone brings, beside langchain-daytona alone (each in a new venv).

Prints the packages and the megabytes each install puts in its venv, the difference, and the
packages ours brings that the peer does not. Usage: uv run python benchmarks/install_footprint.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).parent.parent
UV = (shutil.which("uv") or f"{sys.executable} -m uv").split()


def uv(*argv: str) -> str:
    return subprocess.run([*UV, *argv], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def footprint(where: Path, requirement: str) -> tuple[set[str], float]:
    """The packages in a new venv holding `requirement`, and its site-packages size in MB."""
    uv("venv", "--quiet", "--python", sys.executable, str(where))
    python = where / "bin" / "python"
    uv("pip", "install", "--quiet", "--python", str(python), requirement)
    listing = uv("pip", "list", "--python", str(python), "--format", "freeze")
    packages = {line.split("==")[0].lower() for line in listing.splitlines() if "==" in line}
    (site,) = where.glob("lib/python*/site-packages")
    size = sum(path.stat().st_size for path in site.rglob("*") if path.is_file() and not path.is_symlink())
    return packages, size / 1e6


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        dist = Path(tmp) / "dist"
        uv("build", "--package", "deepagents-daytona", "--wheel", "--out-dir", str(dist))
        (wheel,) = dist.glob("deepagents_daytona-*.whl")
        ours, ours_mb = footprint(Path(tmp) / "ours", str(wheel))
        peer, peer_mb = footprint(Path(tmp) / "peer", "langchain-daytona")
    print("pip install of the package alone, each in a new venv")
    print(f"  deepagents-daytona: {len(ours):4d} packages {ours_mb:7.1f} MB")
    print(f"  langchain-daytona:  {len(peer):4d} packages {peer_mb:7.1f} MB")
    print(f"  difference:         {len(ours) - len(peer):+4d} packages {ours_mb - peer_mb:+7.1f} MB (goal: <= +5)")
    print(f"  ours, not the peer's: {', '.join(sorted(ours - peer)) or '-'}")
    print(f"  the peer's, not ours: {', '.join(sorted(peer - ours)) or '-'}")


if __name__ == "__main__":
    main()
