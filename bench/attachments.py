"""Attachments: peak memory of sending a 25 MB attachment, and cache hit rates.

    .venv/bin/python bench/attachments.py

1. Peak RSS of a process that fetches a 25 MB file (filesystem source) and sends it to an
   SMTP sink in another process, against the same file sent the old way (base64 in the
   stored payload, whole message built in memory). Each runs in a fresh process, so
   ``ru_maxrss`` is that send's peak.
2. A workload of 300 messages, each with 2 attachments drawn (skewed, like real mail where a
   few documents are sent to many) from 40 files served over HTTP with their MD5 declared:
   hits per tier of the two-tier cache and how many fetches reached the server.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mailproxy_models.accounts import SmtpEndpoint  # noqa: E402
from mailproxy_models.claims import ClaimedMessage  # noqa: E402
from mailproxy_workers.attachment_cache import AttachmentCache  # noqa: E402
from mailproxy_workers.attachments import (  # noqa: E402
    ALL_NETWORKS,
    AttachmentFetcher,
    FetchLimits,
    TenantSources,
)
from mailproxy_workers.delivery import AttachmentContext, deliver_one  # noqa: E402
from mailproxy_workers.smtp_pool import SmtpConnectionPool  # noqa: E402

SIZE = 25 * 1024 * 1024
MB = 1024 * 1024


def _rss_mb(field: str = "VmHWM") -> float:
    """Resident set size (VmRSS) or its peak so far (VmHWM) of this process, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _message(attachments: list[dict]) -> ClaimedMessage:
    payload = {
        "id": "bench",
        "from": "Shop <shop@example.com>",
        "to": ["a@example.org"],
        "subject": "Big file",
        "body": "Attached.",
        "content_type": "plain",
        "attachments": attachments,
    }
    return ClaimedMessage(1, "bench", "main", "bench", payload, "token")


def _endpoint(port: int) -> SmtpEndpoint:
    return SmtpEndpoint("bench", "main", "127.0.0.1", port, None, None, False, 300)


def send_once(mode: str, workdir: Path, port: int) -> None:
    """Child process: send the 25 MB file once, print the peak RSS before and after."""
    root = workdir / "files" / "bench"
    pool = SmtpConnectionPool(timeout=60)
    cache = AttachmentCache(workdir / f"cache-{mode}", 64 * MB, MB, 0)
    fetcher = AttachmentFetcher(FetchLimits(60, 30 * MB, 3), cache)
    if mode == "streamed":
        attachment = {"filename": "big.bin", "storage_path": "big.bin", "fetch_mode": "filesystem"}
        context: AttachmentContext | None = AttachmentContext(
            fetcher, TenantSources("bench", filesystem_root=root)
        )
        before = _rss_mb("VmRSS")
    else:
        encoded = base64.b64encode((root / "big.bin").read_bytes()).decode()
        attachment = {"filename": "big.bin", "storage_path": encoded, "fetch_mode": "base64"}
        context = None
        before = _rss_mb("VmRSS")
    started = time.perf_counter()
    outcome = deliver_one(pool, _endpoint(port), _message([attachment]), context)
    elapsed = time.perf_counter() - started
    assert outcome.kind == "sent", outcome
    print(f"{before:.1f} {_rss_mb():.1f} {elapsed:.2f}")


def peak_rss(workdir: Path) -> None:
    root = workdir / "files" / "bench"
    root.mkdir(parents=True)
    (root / "big.bin").write_bytes(os.urandom(SIZE))
    sink = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests" / "support" / "smtp_sink.py"),
            "--port",
            "0",
            "--outdir",
            str(workdir / "sink"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(sink.stdout.readline().split()[1])  # type: ignore[union-attr]
        print("1. Sending one 25 MB attachment (peak RSS of the sending process)")
        for mode, label in (
            ("streamed", "fetched + streamed (this issue)"),
            ("inline", "base64 in payload, built in memory (0.1)"),
        ):
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(workdir), str(port)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout.split()
            before, after, elapsed = (float(x) for x in out)
            print(
                f"   {label:42s} peak RSS {after:6.1f} MB, "
                f"+{after - before:5.1f} MB over the RSS before sending, {elapsed:.2f} s"
            )
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def hit_rates(workdir: Path) -> None:
    from tests.support.http_files import FileServer, Route

    server = FileServer().start()
    try:
        files = {}
        for i in range(40):
            size = 20_000 if i % 4 else 3 * MB  # one in four is a large document
            data = os.urandom(size)
            files[f"/doc{i}"] = data
            server.routes[f"/doc{i}"] = Route(body=data)
        cache = AttachmentCache(workdir / "cache-workload", 8 * MB, MB, 256 * MB)
        fetcher = AttachmentFetcher(FetchLimits(30, 30 * MB, 3), cache)
        tenant = TenantSources("bench", private_networks=ALL_NETWORKS)
        rng = random.Random(7)
        weights = [1 / (rank + 1) for rank in range(40)]  # Zipf-like popularity
        started = time.perf_counter()
        for _ in range(300):
            picks = rng.choices(list(files), weights=weights, k=2)
            attachments = [
                {
                    "filename": f"{path[1:]}.pdf",
                    "storage_path": server.url(path),
                    "fetch_mode": "http_url",
                    "content_md5": hashlib.md5(files[path]).hexdigest(),
                }
                for path in picks
            ]
            for item in fetcher.fetch_all(attachments, tenant):
                item.close()
        elapsed = time.perf_counter() - started
        stats = cache.stats
        print("2. Cache: 300 messages x 2 attachments from 40 files (10 of them 3 MB)")
        print(
            f"   lookups {stats.lookups}: memory hits {stats.memory_hits}, disk hits "
            f"{stats.disk_hits}, misses {stats.misses} -> hit rate {stats.hit_rate():.1%} "
            f"(memory {stats.memory_hits / stats.lookups:.1%}, disk "
            f"{stats.disk_hits / stats.lookups:.1%})"
        )
        print(f"   fetches that reached the server: {len(server.requests)}; {elapsed:.2f} s")
    finally:
        server.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        send_once(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        peak_rss(Path(tmp))
        hit_rates(Path(tmp))


if __name__ == "__main__":
    main()
