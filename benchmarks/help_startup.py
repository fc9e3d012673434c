"""`autoops --help` against a minimal Typer app's `--help`, side by side in one run.

Both are run as fresh processes of the same interpreter, interleaved (A B A B ...) so that
machine noise hits both alike. Reports the median wall time of each and their ratio; the
target (issue 2) is a ratio of at most 1.2.

    python benchmarks/help_startup.py [--runs 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MINIMAL_APP = '''
import typer

app = typer.Typer(help="A minimal Typer app.")


@app.command()
def hello(name: str = "world") -> None:
    """Say hello."""
    print(f"hello {name}")


@app.command()
def bye() -> None:
    """Say bye."""


app()
'''


def time_once(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args()

    autoops = [sys.executable, "-c", "from autoops_cli.main import main; main()", "--help"]
    with tempfile.TemporaryDirectory() as tmp:
        minimal_path = Path(tmp) / "minimal_app.py"
        minimal_path.write_text(MINIMAL_APP)
        minimal = [sys.executable, str(minimal_path), "--help"]
        for argv in (autoops, minimal):  # warm the file cache and .pyc files
            time_once(argv)
        autoops_times, minimal_times = [], []
        for _ in range(args.runs):
            autoops_times.append(time_once(autoops))
            minimal_times.append(time_once(minimal))

    result = {
        "runs": args.runs,
        "autoops_help_median_ms": round(statistics.median(autoops_times) * 1000, 1),
        "minimal_typer_help_median_ms": round(statistics.median(minimal_times) * 1000, 1),
    }
    result["ratio"] = round(
        result["autoops_help_median_ms"] / result["minimal_typer_help_median_ms"], 3
    )
    if args.json:
        print(json.dumps(result))
    else:
        print(f"autoops --help        median {result['autoops_help_median_ms']:.1f} ms")
        print(f"minimal Typer --help  median {result['minimal_typer_help_median_ms']:.1f} ms")
        print(
            f"ratio                 {result['ratio']:.3f}  (target <= 1.2; {args.runs} runs each)"
        )


if __name__ == "__main__":
    main()
