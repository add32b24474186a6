"""Benchmark: where the time of a finished study goes, rule by rule.

Usage: python bench/bench_demo.py [RESULTS_DIR] [--wall SECONDS]

Reads the Snakemake ``benchmark:`` files a run left under ``RESULTS_DIR/benchmarks/`` (default
``results``; every rule writes one per job) and prints a Markdown table for bench/RESULTS.md:
per rule, the number of jobs, the summed and the longest job wall time, the summed CPU time
and the largest resident memory. ``--wall`` (the measured wall time of the whole run, e.g.
of ``time make demo``) adds the ratio of summed job time to wall time, i.e. how many jobs ran
at once on average. Target for ``make demo``: at most 40 minutes on the 2-core machine.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import polars as pl


def rule_of(path: Path, root: Path) -> str:
    """The rule a benchmark file belongs to: its first folder, or its stem less ``_phaseN``."""
    parts = path.relative_to(root).parts
    if len(parts) > 1:
        return parts[0]
    return re.sub(r"_phase\d+$", "", path.stem)


def collect(results: Path) -> pl.DataFrame:
    """One row per job: ``rule, job, s, cpu_s, max_rss_mb``."""
    root = results / "benchmarks"
    files = sorted(root.rglob("*.tsv"))
    if not files:
        raise SystemExit(f"no benchmark files under {root}: run the workflow first")
    rows = []
    for path in files:
        frame = pl.read_csv(path, separator="\t", null_values=["NA", "-"])
        if frame.height == 0:
            raise SystemExit(f"{path}: empty benchmark file")
        last = frame.row(frame.height - 1, named=True)
        rows.append(
            (
                rule_of(path, root),
                str(path.relative_to(root)),
                float(last["s"]),
                float(last["cpu_time"] or 0.0),
                float(last["max_rss"] or 0.0),
            )
        )
    return pl.DataFrame(
        rows,
        schema={
            "rule": pl.String,
            "job": pl.String,
            "s": pl.Float64,
            "cpu_s": pl.Float64,
            "max_rss_mb": pl.Float64,
        },
        orient="row",
    )


def summarise(jobs: pl.DataFrame) -> pl.DataFrame:
    """Per rule: jobs, summed and longest wall time, summed CPU time, largest RSS."""
    return (
        jobs.group_by("rule")
        .agg(
            pl.len().alias("jobs"),
            pl.col("s").sum().alias("sum_s"),
            pl.col("s").max().alias("max_s"),
            pl.col("cpu_s").sum().alias("cpu_s"),
            pl.col("max_rss_mb").max().alias("max_rss_mb"),
        )
        .sort("sum_s", descending=True)
    )


def markdown(table: pl.DataFrame, wall: float | None) -> str:
    lines = [
        "| rule | jobs | sum of job wall, s | longest job, s | CPU, s | max RSS, MB |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.iter_rows(named=True):
        lines.append(
            f"| {r['rule']} | {r['jobs']} | {r['sum_s']:.0f} | {r['max_s']:.0f} "
            f"| {r['cpu_s']:.0f} | {r['max_rss_mb']:.0f} |"
        )
    total = float(table["sum_s"].sum())
    lines.append(
        f"| **all** | {int(table['jobs'].sum())} | {total:.0f} | | "
        f"{float(table['cpu_s'].sum()):.0f} | |"
    )
    if wall:
        lines.append("")
        lines.append(
            f"Wall time {wall:.0f} s ({wall / 60:.1f} min); summed job time / wall = "
            f"{total / wall:.2f} jobs at once on average."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="results", type=Path)
    parser.add_argument("--wall", type=float, default=None, help="measured wall time, s")
    args = parser.parse_args()
    print(markdown(summarise(collect(args.results)), args.wall))


if __name__ == "__main__":
    main()
