"""A demo worker: calls the service with one HTTP client library.

python worker.py --port N --client requests|httpx|urllib3 [--calls 3] [--ms 5]
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client", choices=("requests", "httpx", "urllib3"), default="requests")
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--ms", type=float, default=5)
    args = parser.parse_args(argv)
    url = f"http://127.0.0.1:{args.port}/work?ms={args.ms}"
    total = 0
    if args.client == "requests":
        import requests

        with requests.Session() as session:
            for _ in range(args.calls):
                total += session.get(url, timeout=30).json()["iterations"]
    elif args.client == "httpx":
        import httpx

        with httpx.Client(timeout=30) as client:
            for _ in range(args.calls):
                total += client.get(url).json()["iterations"]
    else:
        import json

        import urllib3

        pool = urllib3.PoolManager()
        for _ in range(args.calls):
            total += json.loads(pool.request("GET", url).data)["iterations"]
    print(f"{args.client}: {args.calls} calls, {total} iterations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
