"""``autoops replay`` at scale: events/s with tracing off and on, and peak memory by file size.

Two parts, each running real ``autoops replay`` processes, variants interleaved per round:

- ``speed``: the same generated file (``--events``, 2,000) replayed with tracing off and with
  tracing to the local store (masking on: the defaults). With ``--baseline DIR`` (a checkout
  of another commit, e.g. ``git worktree add /tmp/base <commit>``) the same two variants of
  that source tree run in the same rounds (``PYTHONPATH=DIR``, same interpreter and
  packages). Reports the medians, the ratio of each variant to the baseline's, and the
  share of a replay's time that tracing takes (``1 - on/off`` in events/s). ``--ceiling``
  adds a third variant of this tree: tracing on, with every store write discarded (the
  replay's process patched by the benchmark, not an option of the product). It bounds what
  any change to the store could give: what is left is the tracer, masking, encoding and the
  guide's layers.
- ``memory``: peak RSS (``ru_maxrss`` of the replay process, from ``os.wait4``) of a small
  and a large file (``--small`` 2,000, ``--large`` 200,000 events), in local mode and in
  langfuse mode against a real ``autoops serve`` (a fresh one per run; only the replay's
  own memory counts). The target: the large file at most 10 MB over the small one. The
  files are generated and written streaming (``generate_events`` is lazy). Each run also
  reports its events/s over the first and the last tenth of the file (from its
  ``--progress-file``): what a store growing under the replay costs.

    python benchmarks/replay_scale.py speed [--events 2000] [--rounds 5] [--baseline DIR]
        [--ceiling]
    python benchmarks/replay_scale.py memory [--small 2000] [--large 200000] [--rounds 1]
        [--modes local,langfuse]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.serve_process import start_serve, stop_serve  # noqa: E402


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any LANGFUSE_/AUTOOPS_ setting of the caller."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "AUTOOPS_"))}
    env.update(extra)
    return env


def write_event_file(path: Path, count: int) -> None:
    """A generated event file, written one event at a time."""
    from autoops_cli.simulation.generator import generate_events, write_events

    write_events(path, generate_events(count, seed=7))


# The CLI with ``LocalStore.write`` replaced by a no-op, written in the replay's process (no
# writer process): tracing runs whole, nothing is mapped or stored.
DISCARDING_STORE = (
    "import config.store.local_store as store; "
    "store.LocalStore.write = lambda self, spans, scores=(): None; "
    "import autoops_cli.actions.replay as replay; "
    "replay.available_cpus = lambda: 1; "
    "from autoops_cli.main import main; main()"
)


def run_replay(
    events: Path,
    env: dict[str, str],
    source: Path | None = None,
    discard_store: bool = False,
    progress: Path | None = None,
) -> dict[str, Any]:
    """One ``autoops replay --json`` process: its summary and its peak RSS in MB.

    ``source`` runs another source tree with this interpreter (``PYTHONPATH``);
    ``discard_store`` runs it with every store write discarded (``DISCARDING_STORE``);
    ``progress`` is the ``--progress-file`` to write.
    """
    if source is not None:
        env = {**env, "PYTHONPATH": str(source)}
    entry = ["-c", DISCARDING_STORE] if discard_store else ["-m", "autoops_cli"]
    extra = ["--progress-file", str(progress)] if progress is not None else []
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            [sys.executable, *entry, "-q", "--json", "replay", str(events), *extra],
            stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
            cwd=env.get("AUTOOPS_HOME"),
        )  # fmt: skip
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"replay exited {process.returncode}: {err.read().decode()[-2000:]}")
        summary = json.loads(out.read())
    return {"summary": summary, "peak_rss_mb": usage.ru_maxrss / 1024}  # Linux: kilobytes


# --- speed --------------------------------------------------------------------------------


def speed(args: argparse.Namespace) -> None:
    sources: dict[str, Path | None] = {"now": None}
    if args.baseline:
        sources = {"baseline": Path(args.baseline).resolve(), "now": None}
    variants = [
        (f"{tree} {name}", source, extra, False)
        for tree, source in sources.items()
        for name, extra in (
            ("tracing off", {"LANGFUSE_TRACING_ENABLED": "false"}),
            ("local store", {}),
        )
    ]
    if args.ceiling:
        variants.append(("now store discarded", None, {}, True))
    rates: dict[str, list[float]] = {name: [] for name, _, _, _ in variants}
    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.jsonl"
        write_event_file(events, args.events)
        for round_number in range(args.rounds):
            order = variants if round_number % 2 == 0 else variants[::-1]
            for name, source, extra, discard_store in order:
                home = (
                    Path(tmp) / f"home-{round_number}-{len(rates[name])}-{name.replace(' ', '-')}"
                )
                home.mkdir()
                env = clean_env(AUTOOPS_HOME=str(home), **extra)
                result = run_replay(events, env, source, discard_store)
                rates[name].append(result["summary"]["events_per_s"])
                print(
                    f"  round {round_number} {name:22} {rates[name][-1]:8.1f} events/s", flush=True
                )
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(f"\nreplay of {args.events} events, {args.rounds} rounds, median events/s")
    for name, value in medians.items():
        print(f"  {name:22} {value:8.1f}  (min {min(rates[name]):.1f}, max {max(rates[name]):.1f})")
    for tree in sources:
        off, on = medians[f"{tree} tracing off"], medians[f"{tree} local store"]
        print(f"  {tree}: tracing takes {100 * (1 - on / off):.0f}% of the replay's time")
    if "baseline" in sources:
        ratio = medians["now local store"] / medians["baseline local store"]
        print(f"  local store, now / baseline: {ratio:.2f} x")
        per_round = [
            now / base
            for now, base in zip(
                rates["now local store"], rates["baseline local store"], strict=True
            )
        ]
        print(f"  per round: {', '.join(f'{value:.2f}' for value in per_round)}")
    if args.ceiling:
        ceiling = medians["now store discarded"]
        print(
            f"  now, store discarded: tracing takes {100 * (1 - ceiling / medians['now tracing off']):.0f}%"
            " of the replay's time"
        )
        if "baseline" in sources:
            print(
                f"  store discarded, now / baseline local store: "
                f"{ceiling / medians['baseline local store']:.2f} x"
            )


# --- memory -------------------------------------------------------------------------------


def stretch_rates(progress: Path) -> tuple[float | None, float | None]:
    """Events/s over the first and the last tenth of a replay, from its progress file (None
    for a stretch with too few progress lines to say: a small file)."""
    lines = [json.loads(line) for line in progress.read_text().splitlines() if line.strip()]
    points: list[tuple[int, float]] = [
        (int(line["events_processed"]), float(line["elapsed_s"]))
        for line in lines
        if line.get("phase") == "replaying"
    ]
    total = points[-1][0]

    def rate(first: float, last: float) -> float | None:
        inside = [p for p in points if first * total <= p[0] <= last * total]
        if len(inside) < 10:
            return None
        (events_a, time_a), (events_b, time_b) = inside[0], inside[-1]
        return (events_b - events_a) / max(time_b - time_a, 1e-9)

    return rate(0.0, 0.1), rate(0.9, 1.0)


def memory_run(mode: str, events: Path, directory: Path) -> dict[str, Any]:
    home = directory / "home"
    home.mkdir(parents=True)
    progress = directory / "progress.jsonl"
    if mode == "local":
        result = run_replay(events, clean_env(AUTOOPS_HOME=str(home)), progress=progress)
    else:
        handle = start_serve(directory / "served.db")
        try:
            env = clean_env(AUTOOPS_HOME=str(home), **handle.client_env())
            result = run_replay(events, env, progress=progress)
        finally:
            stop_serve(handle)
        delivery = result["summary"].get("delivery", {})
        if delivery.get("batches_waiting"):
            raise RuntimeError(f"not everything was delivered: {delivery}")
    result["stretch_rates"] = stretch_rates(progress)
    return result


def memory(args: argparse.Namespace) -> None:
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    sizes = {"small": args.small, "large": args.large}
    peaks: dict[tuple[str, str], list[float]] = {(m, s): [] for m in modes for s in sizes}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for size, count in sizes.items():
            files[size] = Path(tmp) / f"events-{count}.jsonl"
            write_event_file(files[size], count)
        for round_number in range(args.rounds):
            for mode in modes:
                for size in sizes if round_number % 2 == 0 else list(sizes)[::-1]:
                    started = time.perf_counter()
                    result = memory_run(
                        mode, files[size], Path(tmp) / f"{mode}-{size}-{round_number}"
                    )
                    peaks[(mode, size)].append(result["peak_rss_mb"])
                    summary = result["summary"]
                    first, last = result["stretch_rates"]
                    stretches = (
                        f" (first tenth {first:.0f}, last tenth {last:.0f})"
                        if first is not None and last is not None
                        else ""
                    )
                    print(
                        f"  round {round_number} {mode:8} {sizes[size]:>7} events: peak RSS "
                        f"{result['peak_rss_mb']:6.1f} MB, {summary['events_per_s']:.0f} events/s"
                        f"{stretches}, {time.perf_counter() - started:.0f} s",
                        flush=True,
                    )
    print("\npeak RSS of the replay process, median MB")
    for mode in modes:
        small = statistics.median(peaks[(mode, "small")])
        large = statistics.median(peaks[(mode, "large")])
        verdict = "held" if large - small <= 10 else "MISSED"
        print(
            f"  {mode:8} {args.small} events {small:6.1f}, {args.large} events {large:6.1f}: "
            f"+{large - small:.1f} MB (target <= 10 MB: {verdict})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="part", required=True)
    speed_parser = commands.add_parser("speed")
    speed_parser.add_argument("--events", type=int, default=2000)
    speed_parser.add_argument("--rounds", type=int, default=5)
    speed_parser.add_argument("--baseline", help="a source tree of another commit to compare")
    speed_parser.add_argument(
        "--ceiling", action="store_true", help="also run this tree with store writes discarded"
    )
    memory_parser = commands.add_parser("memory")
    memory_parser.add_argument("--small", type=int, default=2000)
    memory_parser.add_argument("--large", type=int, default=200_000)
    memory_parser.add_argument("--rounds", type=int, default=1)
    memory_parser.add_argument("--modes", default="local,langfuse")
    args = parser.parse_args()
    speed(args) if args.part == "speed" else memory(args)


if __name__ == "__main__":
    main()
