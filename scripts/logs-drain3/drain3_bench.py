"""Python Drain3 throughput on the meshmon-logs benchmark corpus (not run by CI).

Usage: drain3_bench.py CORPUS [N ...]
Mines the first N lines of CORPUS (one message per line) with Drain3's default
TemplateMiner configuration, for each N given (default: 100000 1000000), and prints
lines per CPU-second (one core, robust on a loaded machine), lines per wall-second
and the cluster count.
"""
import sys
import time

from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig


def main():
    path = sys.argv[1]
    sizes = [int(a) for a in sys.argv[2:]] or [100_000, 1_000_000]
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for n in sizes:
        cfg = TemplateMinerConfig()
        cfg.profiling_enabled = False
        miner = TemplateMiner(config=cfg)
        batch = lines[:n]
        t0, c0 = time.perf_counter(), time.process_time()
        for line in batch:
            miner.add_log_message(line)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        print(f"drain3 (Python) {len(batch)} lines: {len(batch) / dc:,.0f} lines per CPU-second, "
              f"{len(batch) / dt:,.0f} lines per wall-second, {len(miner.drain.clusters)} clusters",
              flush=True)


if __name__ == "__main__":
    main()
