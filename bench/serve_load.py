"""Load test of `slcvae serve` on loopback: batched vs unbatched replies/s and latency percentiles.

    python bench/serve_load.py --out docs/results/performance           # trains a demo-size model first
    python bench/serve_load.py --model-dir runs/demo/runs/slcvae/seed1234 --clients 200 --requests 5

Three scenarios, each against a fresh server process on 127.0.0.1 (never another address):
- batched:    C concurrent clients x R requests each, the server's dynamic batching on (its defaults);
- unbatched:  the same load, the server limited to one source per forward pass (--max-batch-sources 1);
- sequential: one client, one request at a time (the latency floor: nothing to batch with).
Each request asks for n outputs of one source. Bounded: a fixed number of requests, a per-request
timeout, and the server is stopped at the end whatever happens. Prints a table and writes
serve_load.json / serve_load.md to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_model(out: Path) -> Path:
    """A demo-size SLCVAE (src/slcvae/configs/demo.toml) trained briefly on the synthetic corpus."""
    model = out / "model"
    if (model / "last.pt").is_file():
        return model
    subprocess.run([sys.executable, "-m", "slcvae", "synth", "--out", str(out / "data")], check=True)
    cmd = [sys.executable, "-m", "slcvae", "train", "--model", "slcvae", "--train", str(out / "data/train.tsv"),
           "--valid", str(out / "data/valid.jsonl"), "--config", str(ROOT / "src/slcvae/configs/demo.toml"),
           "--out", str(model), "--set", "train.max_steps=600", "--set", "train.progress=false"]  # fmt: skip
    subprocess.run(cmd, check=True)
    return model


class Server:
    def __init__(self, model_dir: Path, threads: int, extra: list[str]):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "slcvae", "serve", "--model-dir", str(model_dir), "--host", "127.0.0.1",
               "--port", str(self.port), "--threads", str(threads), "--checkpoint", "last", *extra]  # fmt: skip
        self.proc = subprocess.Popen(cmd)

    def __enter__(self) -> Server:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError("server did not come up within 120 s")

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 POST on a kept-alive connection: (status, body). A minimal client, as wrk is: httpx's
    per-request cost (~5 ms of CPU on this machine) would make the load generator the bottleneck."""
    writer.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                 % (path.encode(), len(body), body))  # fmt: skip
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    return status, await reader.readexactly(length)


async def load(port: int, clients: int, requests: int, n: int, timeout: float) -> dict:
    sources = ["item : hat | color : black | material : linen", "item : scarf | color : red | material : wool"]
    bodies = [json.dumps({"sources": [s], "n": n}).encode() for s in sources]
    latencies: list[float] = []
    failures = 0

    async def one_client(c: int) -> None:
        nonlocal failures
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for r in range(requests):
                start = time.perf_counter()
                try:
                    status, body = await asyncio.wait_for(post(reader, writer, "/v1/generate", bodies[(c + r) % 2]), timeout)
                    ok = status == 200 and len(json.loads(body)["samples"][0]) == n
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, KeyError):
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - start)
                else:
                    failures += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in range(clients)))
    wall = time.perf_counter() - start
    health = httpx.get(f"http://127.0.0.1:{port}/health").json()
    ms = sorted(1000 * x for x in latencies)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(p / 100 * len(ms)))], 1) if ms else float("nan")

    return {
        "clients": clients,
        "requests": clients * requests,
        "ok": len(latencies),
        "failed": failures,
        "wall_s": round(wall, 2),
        "replies_per_s": round(len(latencies) / wall, 1),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(ms), 1) if ms else float("nan"),
        "server_batches": health["batches"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", type=Path, help="a trained run folder; default: train a demo-size SLCVAE under --work")
    ap.add_argument("--work", type=Path, default=Path("runs/bench-serve"))
    ap.add_argument("--out", type=Path, help="folder for serve_load.json and serve_load.md")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--requests", type=int, default=5, help="requests per client")
    ap.add_argument("--sequential", type=int, default=100, help="requests of the one-client scenario")
    ap.add_argument("-n", type=int, default=10, help="outputs per source")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    ap.add_argument("--timeout", type=float, default=120.0, help="per-request timeout, seconds")
    args = ap.parse_args()
    model_dir = args.model_dir or demo_model(args.work)
    results = {}
    scenarios = [
        ("batched", [], args.clients, args.requests),
        ("unbatched", ["--max-batch-sources", "1", "--max-wait-ms", "0"], args.clients, args.requests),
        ("sequential", [], 1, args.sequential),
    ]
    for name, extra, clients, requests in scenarios:
        with Server(model_dir, args.threads, extra) as server:
            asyncio.run(load(server.port, 4, 2, args.n, args.timeout))  # warm-up: first calls pay for lazy setup
            results[name] = asyncio.run(load(server.port, clients, requests, args.n, args.timeout))
        print(name, json.dumps(results[name]), flush=True)
    speedup = results["batched"]["replies_per_s"] / results["unbatched"]["replies_per_s"]
    report = {
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "model_dir": str(model_dir),
        "n": args.n,
        "server_threads": args.threads,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "results": results,
        "batched_over_unbatched": round(speedup, 2),
    }
    rows = [f"| {k} | {v['clients']} | {v['requests']} | {v['failed']} | {v['replies_per_s']} | {v['p50_ms']} | {v['p95_ms']} | "
            f"{v['p99_ms']} | {v['server_batches']} |" for k, v in results.items()]  # fmt: skip
    table = "\n".join(["| scenario | clients | requests | failed | replies/s | p50 ms | p95 ms | p99 ms | forward batches |",
                       "|---|---:|---:|---:|---:|---:|---:|---:|---:|", *rows])  # fmt: skip
    print(table)
    print(f"batched / unbatched replies/s: {speedup:.1f}x")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "serve_load.json").write_text(json.dumps(report, indent=2) + "\n")
        md = (f"# slcvae serve under load\n\n`{report['command']}` on {report['machine']}; server with {args.threads} torch "
              f"threads, n = {args.n} outputs per request, one source per request, loopback only.\n\n{table}\n\n"
              f"Batched / unbatched replies/s: **{speedup:.1f}x**. `forward batches` counts the server's generate calls "
              "(the warm-up's included).\n")  # fmt: skip
        (args.out / "serve_load.md").write_text(md)


if __name__ == "__main__":
    main()
