"""Load benchmark of the web service: N Locust clients posting real photos for a while.

    python bench/load.py --shared ../shared/landmarks --index out/dev-index \
        --out bench/load_results.md

Starts ``landmark-finder serve`` on the dev index (``indian-monuments/gallery``, verification
on: the index default; built first with ``landmark-finder index build`` if ``--index`` does not
exist), runs ``bench/locustfile.py`` headless (20 clients × 2 min by default; each client posts
``queries/`` photos back to back and honours ``Retry-After`` on 503), samples the server's RSS
and thread count every second, and writes the figures, the bars and the machine load
(``uptime``: the machine may be shared) to a Markdown file and a JSON file beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

HERE = Path(__file__).resolve().parent
WARM_UP_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from landmark_finder.cli.main import main; main()", *args]


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    import urllib.request

    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("the server did not start")


def sample(pid: int, stop: threading.Event, out: list[tuple[float, float, int]]) -> None:
    """(epoch seconds, RSS MB, threads) of the server, every second."""
    p = psutil.Process(pid)
    while not stop.is_set():
        try:
            out.append((time.time(), p.memory_info().rss / 1e6, p.num_threads()))
        except psutil.Error:
            return
        stop.wait(1.0)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--shared", type=Path, default=Path("../shared/landmarks"))
    ap.add_argument("--index", type=Path, default=Path("out/dev-index"))
    ap.add_argument("--out", type=Path, default=Path("bench/load_results.md"))
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--workers", type=int, default=None, help="serve --workers")
    ap.add_argument("--max-queue", type=int, default=None, help="serve --max-queue")
    args = ap.parse_args()
    indian = args.shared / "indian-monuments"
    if not args.index.is_dir():
        print(f"building the dev index in {args.index} ...", flush=True)
        subprocess.run(
            cli(
                "index",
                "build",
                str(indian / "gallery"),
                "--catalog",
                str(indian / "catalog.csv"),
                "--out",
                str(args.index),
            ),
            check=True,
        )
    photos = sorted(str(p) for p in (indian / "queries").rglob("*") if p.is_file())
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    serve = cli("serve", str(args.index), "--port", str(port))
    if args.workers:
        serve += ["--workers", str(args.workers)]
    if args.max_queue is not None:
        serve += ["--max-queue", str(args.max_queue)]
    with tempfile.TemporaryDirectory() as tmp:
        photo_list, log = Path(tmp) / "photos.txt", Path(tmp) / "requests.csv"
        photo_list.write_text("\n".join(photos))
        server = subprocess.Popen(serve, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        try:
            wait_ready(url, server)
            load_before = os.getloadavg()
            samples: list[tuple[float, float, int]] = []
            stop = threading.Event()
            sampler = threading.Thread(target=sample, args=(server.pid, stop, samples))
            sampler.start()
            t_start = time.time()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "locust",
                    "-f",
                    str(HERE / "locustfile.py"),
                    "--headless",
                    "--only-summary",
                    "--loglevel",
                    "WARNING",
                    "-u",
                    str(args.users),
                    "-r",
                    str(args.users),
                    "-t",
                    f"{args.seconds}s",
                    "--host",
                    url,
                ],
                env=os.environ | {"LOAD_PHOTOS": str(photo_list), "LOAD_LOG": str(log)},
                check=False,
                stdout=subprocess.DEVNULL,
            )
            wall = time.time() - t_start
            stop.set()
            sampler.join()
            load_after = os.getloadavg()
            alive = server.poll() is None
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        rows = [line.split(",") for line in log.read_text().splitlines() if line]
    end = np.array([float(r[0]) for r in rows])
    status = np.array([int(r[1]) for r in rows])
    secs = np.array([float(r[2]) for r in rows])
    # the run's clock starts with its first request (Locust itself takes a while to start)
    t_first = float((end - secs).min()) if len(rows) else t_start
    t = end - t_first
    ok = status == 200
    busy = status == 503
    # requests still open when Locust stops the run end with status 0 in its last moments:
    # cut off by the benchmark, not errors of the server
    cut = (status == 0) & (t >= (t.max() if len(rows) else 0) - 2.0)
    other = ~(ok | busy | cut)
    dur = max(1e-9, min(float(t.max()) if len(rows) else wall, float(args.seconds)))
    lat = secs[ok]
    rss = [(s - t_first, m, n) for s, m, n in samples]
    started = [(s, m, n) for s, m, n in rss if s >= 0]
    after = [m for s, m, _ in rss if s >= WARM_UP_S]
    threads = [n for _, _, n in rss]
    res = {
        "users": args.users,
        "seconds": args.seconds,
        "requests": int(len(rows)),
        "answered_200": int(ok.sum()),
        "busy_503": int(busy.sum()),
        "errors_other": int(other.sum()),
        "cut_off_at_end": int(cut.sum()),
        "error_statuses": sorted({int(s) for s in status[other]}),
        # when in the run (s) and what the client saw, for each error other than a 503
        "errors": [
            (round(float(t[i]), 1), int(status[i]), rows[i][3] if len(rows[i]) > 3 else "")
            for i in np.flatnonzero(other)[:10]
        ],
        "answered_per_s": round(float(ok.sum()) / dur, 2),
        "p50_s": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
        "p95_s": round(float(np.percentile(lat, 95)), 3) if len(lat) else None,
        "max_s": round(float(lat.max()), 3) if len(lat) else None,
        "rss_start_mb": round(started[0][1]) if started else None,
        "rss_after_warmup_min_mb": round(min(after)) if after else None,
        "rss_after_warmup_max_mb": round(max(after)) if after else None,
        "rss_end_mb": round(rss[-1][1]) if rss else None,
        "threads_start": started[0][2] if started else None,
        "threads_max": max(threads) if threads else None,
        "server_alive": alive,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "per_10s": [
            {
                "t": int(a),
                "ok": int((ok & (t >= a) & (t < a + 10)).sum()),
                "503": int((busy & (t >= a) & (t < a + 10)).sum()),
                "rss_mb": round(max((m for s, m, _ in rss if a <= s < a + 10), default=0)),
            }
            for a in range(0, args.seconds, 10)
        ],
    }
    flat = (
        res["rss_after_warmup_max_mb"] is not None
        and res["rss_after_warmup_max_mb"] <= 1.10 * res["rss_after_warmup_min_mb"]
    )
    bars = [
        ("0 errors other than 503", res["errors_other"] == 0 and alive),
        ("≥ 12 answered requests/s", res["answered_per_s"] >= 12),
        ("p95 ≤ 2 s (answered)", res["p95_s"] is not None and res["p95_s"] <= 2.0),
        (f"RSS flat after {WARM_UP_S:.0f} s warm-up (max ≤ 1.1 × min)", flat),
    ]
    res["bars"] = {name: bool(met) for name, met in bars}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    lines = [
        "# Web service under load",
        "",
        f"`python bench/load.py`, {res['date']}: {args.users} Locust clients × {args.seconds} s "
        "posting `indian-monuments/queries` photos to `/api/recognize` (verification on, "
        "dev index of `indian-monuments/gallery`); a client waits `Retry-After` after a 503.",
        f"Machine: {res['cpus']} CPUs, {res['machine']}; load average (1/5/15 min) "
        f"{' / '.join(map(str, res['load_before']))} before, "
        f"{' / '.join(map(str, res['load_after']))} after (includes this benchmark).",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| requests | {res['requests']} |",
        f"| answered (200) | {res['answered_200']} ({res['answered_per_s']}/s) |",
        f"| 503 (queue full) | {res['busy_503']} |",
        f"| other errors | {res['errors_other']} {res['error_statuses'] or ''} |",
        f"| still open when the run stopped | {res['cut_off_at_end']} |",
        f"| latency of answered p50 / p95 / max | {res['p50_s']} / {res['p95_s']} / "
        f"{res['max_s']} s |",
        f"| server RSS start / after warm-up min–max / end | {res['rss_start_mb']} / "
        f"{res['rss_after_warmup_min_mb']}–{res['rss_after_warmup_max_mb']} / "
        f"{res['rss_end_mb']} MB |",
        f"| server threads start / max | {res['threads_start']} / {res['threads_max']} |",
        *[f"| error at {t} s | HTTP {st} {what} |" for t, st, what in res["errors"]],
        "",
        "| bar | met |",
        "| --- | --- |",
        *[f"| {name} | {'yes' if met else 'NO'} |" for name, met in bars],
        "",
        "| second | answered | 503 | RSS max MB |",
        "| --- | --- | --- | --- |",
        *[
            f"| {r['t']}–{r['t'] + 10} | {r['ok']} | {r['503']} | {r['rss_mb']} |"
            for r in res["per_10s"]
        ],
        "",
    ]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
