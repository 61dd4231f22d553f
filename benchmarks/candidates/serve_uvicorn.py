"""Runs an ASGI app on uvicorn the way ``tollway serve`` does (httptools, uvloop, one
process, no access log, no Server header).

    serve_uvicorn.py MODULE:ATTR --port P [--factory]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("app")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--factory", action="store_true")
    args = p.parse_args()
    uvicorn.run(
        args.app,
        factory=args.factory,
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop="uvloop",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
        timeout_keep_alive=30,
        backlog=2048,
    )


if __name__ == "__main__":
    main()
