"""`mail-proxy import genro`: a database made by genro-mail-proxy 0.7.0 itself comes over, its
pending mail leaves through mailproxy with the original SMTP credentials, and its clients'
keys keep working."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailproxy_models.accounts import get_account, imap_endpoint, smtp_endpoint
from mailproxy_models.db import session_scope
from mailproxy_models.messages import Message
from mailproxy_models.suspensions import suspension_state
from tests.support.smtp_sink import SMTPSink
from tests.support.stack import REPO, Stack, wait_until

MAIL_PROXY = str(Path(sys.executable).with_name("mail-proxy"))
GENRO_PYTHON = REPO / ".tools" / "genro-venv" / "bin" / "python"
GENRO_SOURCE = REPO / ".tools" / "genro-src"
BUILDER = REPO / "tests" / "support" / "genro_instance.py"
# The sink takes AUTH over plain SMTP on loopback, as the genro accounts were set up.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
PENDING = {"acme-now", "acme-batch", "acme-file", "acme-later", "beta-1", "beta-held"}


@pytest.fixture
def sink() -> Iterator[SMTPSink]:
    users = {"acme-user": "acme-smtp-secret", "beta-user": "beta-smtp-secret"}
    server = SMTPSink(users=users, auth_required=True)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def genro(tmp_path, sink) -> tuple[Path, str, dict[str, str]]:
    """A genro-mail-proxy instance directory made by its own code: (dir, its key, tenant keys)."""
    if not GENRO_PYTHON.exists() or not (GENRO_SOURCE / "sql").is_dir():
        pytest.fail("genro-mail-proxy 0.7.0 is missing: bash tests/run.sh installs it in .tools/")
    instance = tmp_path / "genro-instance"
    instance.mkdir()
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    env = {**os.environ, "MAIL_PROXY_ENCRYPTION_KEY": key, "PYTHONPATH": str(GENRO_SOURCE)}
    built = subprocess.run(
        [str(GENRO_PYTHON), str(BUILDER), str(instance), str(sink.port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return instance, key, json.loads(built.stdout)["keys"]


def _import(stack: Stack, *args: str, genro_key: str | None = None) -> subprocess.CompletedProcess:
    env = {**stack.env(), "COLUMNS": "200"}
    env.pop("MAIL_PROXY_ENCRYPTION_KEY", None)
    if genro_key:
        env["MAIL_PROXY_ENCRYPTION_KEY"] = genro_key
    return subprocess.run(
        [MAIL_PROXY, "import", "genro", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _snapshot(stack: Stack) -> list[tuple]:
    with session_scope(stack.app.extensions["mailproxy"].sessions) as session:
        rows = session.execute(
            select(Message.tenant_id, Message.id, Message.status, Message.priority).order_by(
                Message.pk
            )
        ).all()
    return [tuple(r) for r in rows]


def test_a_genro_instance_comes_over_and_its_pending_mail_leaves(tmp_path, sqlite_url, genro, sink):
    instance, genro_key, tenant_keys = genro
    database = instance / "mail_service.db"
    source_digest = _digest(database)
    stack = Stack(tmp_path / "mailproxy", sqlite_url, None)
    try:
        # Encrypted credentials cannot be read without that instance's key: said, nothing done.
        keyless = _import(stack, str(instance))
        assert keyless.returncode == 1 and "--genro-key" in keyless.stderr
        assert _snapshot(stack) == []

        dry = _import(stack, str(instance), "--dry-run", "--genro-key", genro_key)
        assert dry.returncode == 0, dry.stderr
        assert "dry run" in dry.stdout and _snapshot(stack) == []

        first = _import(stack, str(instance), genro_key=genro_key)  # key read as genro reads it
        assert first.returncode == 0, first.stderr
        assert "Traceback" not in first.stderr
        imported = _snapshot(stack)
        assert {(t, i) for t, i, _s, _p in imported} == {(m.split("-")[0], m) for m in PENDING}
        priorities = {i: p for _t, i, _s, p in imported}
        assert priorities["acme-now"] == 0 and priorities["acme-batch"] == 3

        second = _import(stack, str(database), "--genro-key", genro_key)
        assert second.returncode == 0, second.stderr
        assert _snapshot(stack) == imported
        summary = [line.split("│")[1:4] for line in second.stdout.splitlines() if "│" in line]
        assert [[c.strip() for c in row] for row in summary] == [
            ["tenants", "0", "2"],
            ["accounts", "0", "2"],
            ["api keys", "0", "2"],
            ["messages", "0", "6"],
        ]
        assert _digest(database) == source_digest  # the source is only read

        box = stack.app.extensions["mailproxy"].box
        with session_scope(stack.app.extensions["mailproxy"].sessions) as session:
            acme = get_account(session, "acme", "main")
            assert acme.password_enc and acme.password_enc.startswith("v1:")
            assert smtp_endpoint(acme, box).password == "acme-smtp-secret"
            imap = imap_endpoint(acme, box)
            assert imap is not None and imap.password == "acme-imap-secret"
            assert suspension_state(session, "beta")["suspended_batches"] == ["paused"]
            later = session.scalar(select(Message).where(Message.id == "acme-later"))
            assert later is not None and later.deferred_ts == 4_102_444_800.0
            count = session.scalar(select(func.count()).select_from(Message))
            assert count == len(PENDING)

        stack.start_worker("w1", beat=True)
        received = sink.wait_for(4, timeout=90)
        logins = {r.message()["Subject"]: r.login for r in received}
        assert logins == {
            "Now": "acme-user",
            "Batch": "acme-user",
            "File": "acme-user",
            "Beta": "beta-user",
        }
        attached = next(r for r in received if r.message()["Subject"] == "File").message()
        files = {p.get_filename(): p.get_payload(decode=True) for p in attached.walk()}
        assert files.get("note.txt") == b"attached note"

        # The client keeps its genro-mail-proxy key and sees its messages.
        def acme_statuses():
            answer = stack.call("GET", "/messages", token=tenant_keys["acme"])
            assert answer.status_code == 200, answer.json
            found = {m["id"]: m["status"] for m in answer.json["messages"]}
            return found if found.get("acme-file") == "sent" else None

        statuses = wait_until(acme_statuses, timeout=30)
        assert statuses["acme-now"] == "sent" and statuses["acme-later"] == "pending"
        assert set(statuses) == {m for m in PENDING if m.startswith("acme")}
        beta = stack.call("GET", "/messages", token=tenant_keys["beta"]).json["messages"]
        assert {m["id"] for m in beta} == {"beta-1", "beta-held"}
        assert next(m for m in beta if m["id"] == "beta-held")["status"] != "sent"
    finally:
        stack.stop()
