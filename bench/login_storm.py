"""Keep N logins in flight against sessionward until SIGTERM or --max-seconds, then write what they got.

Its users (storm0@example.test ...) are registered first and are not the load generator's, so the storm's
sessions never evict the refreshing sessions. Prints `@@storm-ready` once the logins start.

    taskset -c 1 /tmp/loadgen-venv/bin/python bench/login_storm.py --base-url http://127.0.0.1:18181 --out s.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import Counter
from typing import Any

import aiohttp

from loadgen import check_loopback, percentile

API = "/api/v1/auth"
PASSWORD = "storm-password-123"


class Storm:
    def __init__(self, base_url: str, users: int) -> None:
        self.base_url = base_url
        self.emails = [f"storm{i}@example.test" for i in range(users)]
        self.status: Counter[str] = Counter()
        self.latencies: list[float] = []

    async def register(self, http: aiohttp.ClientSession) -> None:
        for email in self.emails:
            body = {"email": email, "password": PASSWORD}
            async with http.post(self.base_url + API + "/register", json=body) as response:
                if response.status not in (201, 409):
                    raise SystemExit(f"register {email}: HTTP {response.status}")

    async def login_loop(self, http: aiohttp.ClientSession, worker: int, stop: asyncio.Event) -> None:
        turn = worker
        while not stop.is_set():
            body = {"email": self.emails[turn % len(self.emails)], "password": PASSWORD}
            turn += 1
            started = time.perf_counter()
            try:
                async with http.post(self.base_url + API + "/login", json=body) as response:
                    await response.read()
                    self.status[str(response.status)] += 1
                    if response.status == 200:
                        self.latencies.append(1000 * (time.perf_counter() - started))
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.status[type(exc).__name__] += 1

    def summary(self, seconds: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "seconds": round(seconds, 2),
            "logins_ok": len(ordered),
            "logins_per_s": len(ordered) / seconds if seconds else 0.0,
            "status": dict(self.status),
            "p50_ms": percentile(ordered, 50),
            "p99_ms": percentile(ordered, 99),
        }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    storm = Storm(args.base_url.rstrip("/"), args.users)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.call_later(args.max_seconds, stop.set)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    connector = aiohttp.TCPConnector(limit=args.concurrency + 2)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
        await storm.register(http)
        print("@@storm-ready", flush=True)
        started = time.perf_counter()
        await asyncio.gather(*(storm.login_loop(http, i, stop) for i in range(args.concurrency)))
    return storm.summary(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=300)
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    check_loopback(args.base_url)
    result = asyncio.run(main_async(args))
    with open(args.out, "w") as out:
        json.dump(result, out, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
