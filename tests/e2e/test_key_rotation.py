"""`mail-proxy keys rotate` while a worker runs: every secret moves to the new key, the old
key is retired, and the running worker keeps delivering with the account's password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from tests.support.smtp_sink import SMTPSink
from tests.support.stack import Stack, make_messages

MAIL_PROXY = str(Path(sys.executable).with_name("mail-proxy"))


def _stored_key_ids(stack: Stack) -> set[str]:
    with stack.app.extensions["mailproxy"].engine.connect() as conn:
        password = conn.execute(sa.text("SELECT password_enc FROM accounts")).scalar_one()
        auth = conn.execute(sa.text("SELECT client_auth FROM tenants")).scalar_one()
    return {password.split(":")[1], str(auth).split("v1:")[1].split(":")[0]}


def test_rotation_under_a_running_worker_loses_no_secret(tmp_path, postgres_url, redis_url):
    sink = SMTPSink(users={"mailer": "smtp-secret-pw"}, auth_required=True)
    sink.start()
    stack = Stack(tmp_path, postgres_url, redis_url)
    try:
        key = stack.setup_tenant(
            sink.port,
            account={
                "user": "mailer",
                "password": "smtp-secret-pw",
                "allow_insecure_auth": True,  # the sink offers no TLS
            },
        )
        stack.call(
            "PUT",
            "/tenant/acme",
            token=key,
            json={"client_auth": {"method": "bearer", "token": "client-bearer-secret"}},
        )
        old_ids = _stored_key_ids(stack)
        assert len(old_ids) == 1
        stack.start_worker("before-rotation")
        stack.call("POST", "/commands/add-messages", token=key, json={"messages": make_messages(1)})
        sink.wait_for(1, timeout=30)

        result = subprocess.run(
            [MAIL_PROXY, "keys", "rotate"],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert (
            "2 secrets re-encrypted" in result.stdout
            and "1 old key file(s) removed" in result.stdout
        )
        new_ids = _stored_key_ids(stack)
        assert len(new_ids) == 1 and new_ids != old_ids
        assert not list(tmp_path.glob("encryption.key.old-*"))

        # The worker started under the old key decrypts the re-encrypted password.
        stack.call(
            "POST",
            "/commands/add-messages",
            token=key,
            json={"messages": make_messages(1, prefix="AFTER")},
        )
        received = sink.wait_for(2, timeout=30)
        assert received[1].login == "mailer"
        shown = stack.call("GET", "/tenant/acme", token=key).json["tenant"]["client_auth"]
        assert shown == {"method": "bearer", "user": None, "token": "***"}
    finally:
        stack.stop()
        sink.stop()
