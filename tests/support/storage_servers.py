"""Object-store servers on loopback for the offload tests: moto (S3), gcp-storage-emulator
(GCS) and Azurite (Azure Blob). Each is started once per session, waited for with a
bounded readiness check and stopped by its PID. A missing server is an error naming the
install step, never a skip."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.support.servers import free_port, wait_port

REPO = Path(__file__).resolve().parents[2]
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft).
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def _tool(module_binary: str) -> str:
    """A console script installed next to this interpreter (the test extra installs it)."""
    path = Path(sys.executable).parent / module_binary
    if not path.exists():
        raise RuntimeError(
            f"{module_binary} is not installed: pip install -e '.[test]' (or bash tests/run.sh)"
        )
    return str(path)


@contextmanager
def moto_server() -> Iterator[str]:
    """URL of a moto S3 server."""
    port = free_port()
    proc = subprocess.Popen(
        [_tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/moto-api/", proc)
        yield url
    finally:
        _stop(proc)


@contextmanager
def gcs_emulator() -> Iterator[str]:
    """URL of a gcp-storage-emulator (in memory)."""
    port = free_port()
    proc = subprocess.Popen(
        [
            _tool("gcp-storage-emulator"),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/", proc)
        yield url
    finally:
        _stop(proc)


def azurite_binary() -> str:
    given = os.environ.get("AZURITE_BLOB")
    path = Path(given) if given else REPO / ".tools/azurite/node_modules/.bin/azurite-blob"
    if not path.exists():
        raise RuntimeError(
            f"azurite-blob not found at {path}: bash tests/run.sh installs it "
            "(npm install --prefix .tools/azurite azurite@3.35.0)"
        )
    return str(path)


@contextmanager
def azurite() -> Iterator[str]:
    """Connection string of an Azurite blob server (data in a temporary directory)."""
    port = free_port()
    location = tempfile.mkdtemp(prefix="azurite-")
    proc = subprocess.Popen(
        [
            azurite_binary(),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            location,
            "--silent",
            "--skipApiVersionCheck",
            "--disableTelemetry",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, timeout=30, proc=proc)
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
            f"AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
        )
    finally:
        _stop(proc)
        shutil.rmtree(location, ignore_errors=True)


def throwaway_service_account() -> str:
    """JSON of a service account with a fresh key: enough to sign GCS URLs offline."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return json.dumps(
        {
            "type": "service_account",
            "project_id": "test",
            "private_key_id": "1",
            "private_key": pem,
            "client_email": "mailproxy@test.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": "http://127.0.0.1:9/token",
        }
    )
