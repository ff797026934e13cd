"""bench/RESULTS.md from the summary bench/run.py collects: medians over the runs, ratios, targets met or not."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

DBS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
GAINS = Path(__file__).with_name("GAINS.md")  # kept by hand: what each optimisation gained
Runs = list[dict[str, Any]]


def med(runs: Runs, key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def errors(runs: Runs) -> str:
    total: Counter[str] = Counter()
    for run in runs:
        total.update(run["errors"])
    return ", ".join(f"{k} {v}" for k, v in sorted(total.items())) or "0"


def foreign(runs: Runs) -> str:
    return ", ".join(num(run["foreign_pct"], 0) for run in runs)


# --- the tables ----------------------------------------------------------------------------------------------


def load_row(db: str, load: str, system: str, runs: Runs) -> str:
    refresh = f"{num(med(runs, 'refresh_p50_ms'))} / {num(med(runs, 'refresh_p99_ms'))}"
    protected = f"{num(med(runs, 'protected_p50_ms'))} / {num(med(runs, 'protected_p99_ms'))}"
    return (
        f"| {DBS.get(db, db)} | {load} | {system} | {num(med(runs, 'refresh_per_s'), 0)} | {refresh} | "
        f"{num(med(runs, 'protected_per_s'), 0)} | {protected} | {num(med(runs, 'server_cpu_ms'), 2)} | "
        f"{num(med(runs, 'cpu0_pct'), 0)} | {foreign(runs)} | {num(med(runs, 'loadgen_cpu_pct'), 0)} | {errors(runs)} |"
    )


def compare_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| DB | load | system | refresh/s | refresh p50 / p99 ms | protected/s | protected p50 / p99 ms "
        "| server CPU ms/request | CPU 0 busy % | foreign CPU % per run | load generator CPU % | non-2xx / errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for db in (db for db in DBS if db in results):
        peer, ours = results[db]["peer"], results[db]["sessionward"]
        for mode, load in (("refresh-only", "refresh-only, 16 clients"), ("mixed", "mixed, 10 GETs per refresh")):
            lines.append(load_row(db, load, "peer", peer[mode]))
            lines.append(load_row(db, load, "sessionward", ours[mode]))
        refresh = ratio(med(ours["refresh-only"], "refresh_per_s"), med(peer["refresh-only"], "refresh_per_s"))
        protected = ratio(med(ours["mixed"], "protected_per_s"), med(peer["mixed"], "protected_per_s"))
        ratios.append(f"- {DBS[db]}: refresh/s **{num(refresh, 2)}x** the peer; protected/s (mixed) "
                      f"**{num(protected, 2)}x** the peer.")  # fmt: skip
    return [*lines, "", *ratios]


def hello_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| server | DB | GET /api/v1/auth/me per s | p50 / p99 ms | server CPU ms/request | % of hello | "
        "foreign CPU % per run | load generator CPU % | non-2xx / errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for db, ours, hello in hello_pairs(results):
        lines.append(hello_row("hello.py (same stack, no work), in turn with the row below", "-", hello, 1.0))
        share = ratio(med(ours, "protected_per_s"), med(hello, "protected_per_s"))
        lines.append(hello_row("sessionward", DBS[db], ours, share))
    return lines


def hello_pairs(results: dict[str, Any]) -> list[tuple[str, Runs, Runs]]:
    """Per DB: sessionward's protected-only runs and the hello.py runs made in turn with them."""
    return [
        (db, results[db]["sessionward"]["protected-only"], results[db]["sessionward"]["hello"]["protected-only"])
        for db in DBS
        if db in results and "hello" in results[db]["sessionward"]
    ]


def hello_row(server: str, db: str, runs: Runs, share: float | None) -> str:
    return (
        f"| {server} | {db} | {num(med(runs, 'protected_per_s'), 0)} | "
        f"{num(med(runs, 'protected_p50_ms'))} / {num(med(runs, 'protected_p99_ms'))} | "
        f"{num(med(runs, 'server_cpu_ms'), 2)} | {num(None if share is None else 100 * share, 0)} | "
        f"{foreign(runs)} | {num(med(runs, 'loadgen_cpu_pct'), 0)} | {errors(runs)} |"
    )


def storm_table(results: dict[str, Any]) -> list[str]:
    lines = [
        "| DB | refresh/s quiet / storm | refresh p50 quiet / storm ms | refresh p99 quiet / storm ms | p99 ratio "
        "| logins/s | login p50 / p99 ms | login statuses | refresh non-2xx / errors (storm) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for db in (db for db in DBS if db in results):
        ours = results[db]["sessionward"]
        quiet, storm, logins = ours["refresh-only"], ours["storm"], ours["logins"]
        statuses: Counter[str] = Counter()
        for run in logins:
            statuses.update(run["status"])
        p99 = ratio(med(storm, "refresh_p99_ms"), med(quiet, "refresh_p99_ms"))
        lines.append(
            f"| {DBS[db]} | {num(med(quiet, 'refresh_per_s'), 0)} / {num(med(storm, 'refresh_per_s'), 0)} | "
            f"{num(med(quiet, 'refresh_p50_ms'))} / {num(med(storm, 'refresh_p50_ms'))} | "
            f"{num(med(quiet, 'refresh_p99_ms'))} / {num(med(storm, 'refresh_p99_ms'))} | {num(p99, 2)}x | "
            f"{num(med(logins, 'logins_per_s'))} | {num(med(logins, 'p50_ms'), 0)} / {num(med(logins, 'p99_ms'), 0)} | "
            f"{', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))} | {errors(storm)} |"
        )
    return lines


def scale_table(scale: dict[str, Any]) -> list[str]:
    lines = [
        "| database | fill s | refresh/s | refresh p50 / p99 ms | server CPU ms/request | foreign CPU % | "
        "non-2xx / errors |",
        "|---|---|---|---|---|---|---|",
    ]
    for step in (scale["baseline"], scale["large"]):
        runs = step["refresh-only"]
        lines.append(
            f"| {step['sessions']:,} sessions, {step['tokens']:,} refresh tokens | {step['fill_s']:.0f} | "
            f"{num(med(runs, 'refresh_per_s'), 0)} | {num(med(runs, 'refresh_p50_ms'))} / "
            f"{num(med(runs, 'refresh_p99_ms'))} | {num(med(runs, 'server_cpu_ms'), 2)} | {foreign(runs)} | "
            f"{errors(runs)} |"
        )
    return lines


def servers_table(results: dict[str, Any]) -> list[str]:
    lines = ["| server | RSS per worker after its load, MB | log lines at warning level or above |", "|---|---|---|"]
    for name, into in servers(results):
        lines.append(f"| {name} | {', '.join(f'{mb:.0f}' for mb in into['rss_mb'])} | {into['log_problems']} |")
    return lines


def servers(results: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for db in (db for db in DBS if db in results):
        found.append((f"peer, {DBS[db]} (gunicorn)", results[db]["peer"]))
        found.append((f"sessionward, {DBS[db]}", results[db]["sessionward"]))
        if "hello" in results[db]["sessionward"]:
            found.append((f"hello.py, beside sessionward on {DBS[db]}", results[db]["sessionward"]["hello"]))
    for step in ("baseline", "large") if "scale" in results else ():
        found.append((f"sessionward, PostgreSQL, scale {step}", results["scale"][step]))
    return found


# --- targets -------------------------------------------------------------------------------------------------


def targets(results: dict[str, Any]) -> list[str]:
    lines = ["| target | SQLite | PostgreSQL | met |", "|---|---|---|---|"]
    for name, values, at_least, limit in target_values(results):
        cells = [num(values[db], 2) if db in values else "-" for db in DBS]
        present = [v for v in values.values() if v is not None]
        passed = all(v >= limit if at_least else v <= limit for v in present)
        met = "-" if not present else ("yes" if passed else "**no**")
        lines.append(f"| {name} | {' | '.join(cells)} | {met} |")
    return lines


Target = tuple[str, dict[str, float | None], bool, float]  # name, figure per DB, at least (or at most), limit


def target_values(results: dict[str, Any]) -> list[Target]:
    dbs = [db for db in DBS if db in results]
    ours = {db: results[db]["sessionward"] for db in dbs}

    def versus(runs: dict[str, Runs], mode: str, key: str, base: dict[str, Runs], base_mode: str) -> dict[str, Any]:
        return {db: ratio(med(runs[db][mode], key), med(base[db][base_mode], key)) for db in dbs}

    peer = {db: results[db]["peer"] for db in dbs}
    rows: list[Target] = [
        ("refresh/s ÷ peer ≥ 5", versus(ours, "refresh-only", "refresh_per_s", peer, "refresh-only"), True, 5),
        ("refresh p99 ms, 16 clients ≤ 25", {db: med(ours[db]["refresh-only"], "refresh_p99_ms") for db in dbs},
         False, 25),
        ("protected/s (mixed) ÷ peer ≥ 5", versus(ours, "mixed", "protected_per_s", peer, "mixed"), True, 5),
        ("login storm: refresh p99 ÷ quiet ≤ 2", versus(ours, "storm", "refresh_p99_ms", ours, "refresh-only"),
         False, 2),
    ]  # fmt: skip
    pairs = hello_pairs(results)
    if pairs:
        shares = {db: ratio(med(mine, "protected_per_s"), med(hello, "protected_per_s")) for db, mine, hello in pairs}
        rows.append(("protected/s ÷ hello-JSON ≥ 0.70", shares, True, 0.70))
    rss = {db: max(ours[db]["rss_mb"], default=None) for db in dbs}
    if "scale" in results:
        scale = results["scale"]
        p50 = ratio(med(scale["large"]["refresh-only"], "refresh_p50_ms"),
                    med(scale["baseline"]["refresh-only"], "refresh_p50_ms"))  # fmt: skip
        rows.append(("1 M sessions / 5 M tokens: refresh p50 ÷ 10 k rows ≤ 1.25", {"postgres": p50}, False, 1.25))
        rss["postgres"] = max([*scale["baseline"]["rss_mb"], *scale["large"]["rss_mb"], rss.get("postgres") or 0])
    rows.append(("max RSS per sessionward worker after the load, MB ≤ 120", rss, False, 120))
    return rows


# --- the document --------------------------------------------------------------------------------------------


def header(meta: dict[str, Any], args: dict[str, Any]) -> list[str]:
    machine, versions = meta["machine"], meta["versions"]
    load_start = ", ".join(f"{x:.2f}" for x in machine["loadavg_start"])
    load_end = ", ".join(f"{x:.2f}" for x in machine["loadavg_end"])
    return [
        "# Benchmark: sessionward side by side with the peer",
        "",
        "Written by `bench/run.py` (`make bench`); every run replaces this file. The peer is Django + DRF + "
        "SimpleJWT with rotation and blacklisting (`bench/peer/`), measured in the same run, on the same machine, "
        "with the same load generator (`bench/loadgen.py`). How it works: `bench/README.md`.",
        "",
        "| | |",
        "|---|---|",
        f"| date | {meta['date']} |",
        f"| command | `{meta['command']}` ({meta['elapsed_s'] / 60:.1f} min) |",
        f"| machine | {machine['nproc']} CPUs, {machine['cpu_model']}, Linux {machine['kernel']} |",
        f"| load average (1, 5, 15 min) | {load_start} at the start, {load_end} at the end |",
        f"| sessionward | commit {versions['commit']} (uncommitted changes in src/: {versions['dirty']}); "
        f"{versions['project']}; Python {versions['python']}, SQLite {versions['sqlite']} |",
        f"| peer | {versions['peer']} |",
        f"| load generator | {versions['loadgen']} |",
        f"| PostgreSQL | {versions.get('postgresql', '-')}, dedicated cluster on port 5433, stock settings |",
        f"| raw results | `$OUT` = `{meta['raw']}` (not in the repository) |",
        "",
        "Processes: the servers on CPU 0 (with PostgreSQL), the load generator and the login storm on CPU 1. "
        "`-k 100000` is the protected-only load (no refresh inside the window).",
        "",
        "```",
        *(f"# {name}\n{command}" for name, command in meta["servers"].items()),
        "# load generator",
        "taskset -c 1 /tmp/loadgen-venv/bin/python bench/loadgen.py --config bench/configs/<peer_simplejwt|sessionward>"
        f".json --base-url <server> --mode <refresh-only|mixed> -c {args['clients']} -n {args['clients']} "
        f"-k <10|100000> -w {args['warmup']} -d {args['duration']} --markers --out $OUT/<run>.json",
        "```",
        "",
    ]


def markdown(summary: dict[str, Any]) -> str:
    results, args = summary["results"], summary["args"]
    lines = header(summary["meta"], args)
    lines += ["## Targets", "", *targets(results), ""]
    lines.append(
        f"Each figure is the median of {args['runs']} run(s) of {args['duration']} s after {args['warmup']} s of "
        f"warm-up, {args['clients']} clients with one session each. On a shared 2-core machine the rates move with "
        "whatever else runs: read the foreign-CPU columns (CPU time not used by the system under test or the load "
        "generator, % of one core) before reading a ratio."
    )
    if any(db in results for db in DBS):
        lines += ["", "## Refresh-only and mixed load: peer vs sessionward", "", *compare_table(results)]
        lines += ["", "## Login storm (sessionward): 10 logins in flight while 16 clients refresh", ""]
        lines += [*storm_table(results)]
    if hello_pairs(results):
        lines += ["", "## Protected requests vs a hello-JSON endpoint on the same stack", ""]
        lines += [*hello_table(results)]
    if "scale" in results:
        lines += ["", "## Scale (PostgreSQL): refresh-only on a large database", "", *scale_table(results["scale"])]
    lines += ["", "## Servers after the load", "", *servers_table(results), ""]
    lines += [GAINS.read_text().rstrip(), ""]
    return "\n".join(lines)
