"""How long ``tenantry --help`` takes, against a bare interpreter's start in the same run.

Prints the median of N runs of each and their ratio. Target: ``tenantry --help`` under
1 s. Usage: ``.venv/bin/python benchmarks/cli_help.py [--runs 9]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def median_seconds(command: list[str], runs: int) -> float:
    """The median wall time of ``runs`` runs of ``command`` (each must succeed)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)  # noqa: S603 (our own argv)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=9)
    runs = parser.parse_args().runs
    tenantry = shutil.which("tenantry", path=str(Path(sys.executable).parent)) or "tenantry"
    baseline = median_seconds([sys.executable, "-c", "pass"], runs)
    help_s = median_seconds([tenantry, "--help"], runs)
    print(f"load average {os.getloadavg()[0]:.2f}, {runs} runs each")
    print(f"python -c pass: median {baseline * 1000:.0f} ms")
    print(f"tenantry --help: median {help_s * 1000:.0f} ms "
          f"({help_s / baseline:.1f}x the bare interpreter; target < 1000 ms: "
          f"{'met' if help_s < 1 else 'missed'})")


if __name__ == "__main__":
    main()
