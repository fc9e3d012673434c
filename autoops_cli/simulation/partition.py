"""Which shard and which worker an event goes to: a stable hash of its ``product_id``.

Every event of one product lands in the same shard and the same worker, so a product's events
keep their order. The hash is the same on every machine, Python version and run (unlike
``hash()``), so N machines given the same file and ``--shard K/N`` split it without talking
to each other. To reproduce it elsewhere::

    h = int.from_bytes(hashlib.blake2b(product_id.encode("utf-8"), digest_size=8).digest(), "big")
    shard = h % N + 1            # --shard K/N keeps the events with shard == K
    worker = (h // N) % W        # inside a shard, --workers W

The worker is taken from the hash bits the shard did not use, so the split between workers
stays balanced inside every shard.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from config.errors import UsageError

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")

# More processes than CPUs add no speed, only memory (each worker is an interpreter of about
# 60 MB): a mistyped count must not start thousands of them and exhaust the machine. A small
# machine still takes a few more than it has CPUs (tests of the partition, a laptop).
WORKERS_PER_CPU = 4
WORKERS_AT_LEAST = 16


def most_workers(cpus: int) -> int:
    """The largest ``--workers`` count allowed with ``cpus`` CPUs available."""
    return max(WORKERS_AT_LEAST, WORKERS_PER_CPU * cpus)


def product_hash(product_id: str) -> int:
    """The stable 64-bit hash of a product id (blake2b, 8 bytes, big-endian)."""
    digest = hashlib.blake2b(product_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def placement(product_id: str, shards: int, workers: int) -> tuple[int, int]:
    """The shard (1 to ``shards``) and, inside it, the worker (0 to ``workers - 1``) of the
    product's events, from one hash."""
    hashed = product_hash(product_id)
    return hashed % shards + 1, (hashed // shards) % workers


def shard_of(product_id: str, shards: int) -> int:
    """The shard (1 to ``shards``) the product's events belong to."""
    return placement(product_id, shards, 1)[0]


def worker_of(product_id: str, shards: int, workers: int) -> int:
    """The worker (0 to ``workers - 1``) of the product's events inside its shard."""
    return placement(product_id, shards, workers)[1]


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/3"`` -> ``(2, 3)``; a ``UsageError`` unless it is K/N with 1 <= K <= N."""
    match = _SHARD.fullmatch(text)
    if match is None:
        raise UsageError(f"--shard {text!r}: expected K/N, e.g. --shard 1/3")
    shard, shards = int(match[1]), int(match[2])
    if shards < 1:
        raise UsageError(f"--shard {text!r}: N must be at least 1")
    if not 1 <= shard <= shards:
        raise UsageError(
            f"--shard {text!r}: K must be between 1 and N (1/{shards} to {shards}/{shards})"
        )
    return shard, shards


def parse_workers(text: str) -> int:
    """``"4"`` -> 4; ``"auto"`` -> the CPUs this process may run on; a ``UsageError`` for
    anything else, and for more than ``most_workers`` allows."""
    if text.strip().lower() == "auto":
        return available_cpus()
    try:
        workers = int(text)
    except ValueError:
        raise UsageError(f"--workers {text!r}: expected a number of processes or auto") from None
    if workers < 1:
        raise UsageError(f"--workers {text!r}: at least 1 (or auto)")
    # Up to WORKERS_AT_LEAST needs no look at the CPUs (file reads for a container's quota).
    if workers > WORKERS_AT_LEAST:
        cpus = available_cpus()
        most = most_workers(cpus)
        if workers > most:
            raise UsageError(
                f"--workers {text!r}: at most {most} here ({cpus} CPU(s) available); more "
                "processes than CPUs only add memory"
            )
    return workers


def available_cpus() -> int:
    """The CPUs this process may use: its affinity (the machine's count where unknown), less
    where a container's CPU quota (cgroup ``cpu.max`` or ``cpu.cfs_quota_us``) allows fewer,
    as on CI runners and Kubernetes pods with CPU limits."""
    import os

    try:
        cpus = max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        cpus = max(1, os.cpu_count() or 1)
    quota = cgroup_cpu_quota()
    return cpus if quota is None else max(1, min(cpus, quota))


def cgroup_cpu_quota(
    root: Path = Path("/sys/fs/cgroup"), membership: Path = Path("/proc/self/cgroup")
) -> int | None:
    """The CPUs the process's cgroup quota allows, rounded up (1.5 CPUs: 2 workers still go
    faster than 1), or None without a quota or where it cannot be read (not Linux)."""
    try:
        lines = membership.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        relative = path.lstrip("/")
        if controllers == "":  # cgroup v2: "0::/path", the limit in cpu.max ("max 100000")
            found = _cpu_max(root / relative / "cpu.max", root / "cpu.max")
        elif "cpu" in controllers.split(","):  # cgroup v1: cfs quota and period, in us
            found = _cfs_quota(root / "cpu" / relative, root / "cpu", root / "cpu,cpuacct")
        else:
            continue
        if found is not None:
            return found
    return None


def _cpu_max(*files: Path) -> int | None:
    """The quota of the first readable ``cpu.max`` ("<quota> <period>")."""
    for path in files:
        text = _read(path)
        if text is not None:
            quota, _, period = text.partition(" ")
            return _cpus(quota, period)
    return None


def _cfs_quota(*directories: Path) -> int | None:
    """The quota of the first directory with both v1 files."""
    for directory in directories:
        quota = _read(directory / "cpu.cfs_quota_us")
        period = _read(directory / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            return _cpus(quota, period)
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, ValueError):
        return None


def _cpus(quota: str, period: str) -> int | None:
    """CPUs from a quota and a period in microseconds, rounded up; None for no limit ("max",
    -1) or what is not a number."""
    try:
        quota_us, period_us = int(quota), int(period)
    except ValueError:
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, -(-quota_us // period_us))
