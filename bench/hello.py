"""A hello-JSON service on sessionward's server stack: FastAPI under uvicorn with the options `sessionward serve` uses.

Its endpoints answer the paths of configs/sessionward.json with small fixed envelopes (no work behind them), so
the load generator drives it exactly as it drives sessionward. Its protected rate is the stack's ceiling.

    .venv/bin/python bench/hello.py --port 18182 --workers 2
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

app = FastAPI()
USER = {"id": 1, "email": "hello@example.test", "name": None, "role": "user"}
TOKENS = {"access": {"token": "hello-access", "expires_in": 900}, "refresh": {"token": "hello-refresh"}}


@app.post("/api/v1/auth/register", status_code=201)
async def register() -> dict[str, Any]:
    return {"status": "success", "data": {"user": USER}}


@app.post("/api/v1/auth/login")
async def login() -> dict[str, Any]:
    return {"status": "success", "data": {"tokens": TOKENS, "session": {"id": "hello-session"}}}


@app.post("/api/v1/auth/refresh")
async def refresh() -> dict[str, Any]:
    return {"status": "success", "data": TOKENS}


@app.get("/api/v1/auth/me")
async def me() -> dict[str, Any]:
    return {"status": "success", "data": {"user": USER}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=18182)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    uvicorn.run(  # the same options as sessionward.cli.serve
        "hello:app",
        app_dir=str(Path(__file__).resolve().parent),
        host="127.0.0.1",
        port=args.port,
        workers=args.workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
