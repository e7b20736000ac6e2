"""`mail-proxy db purge`: retention on demand, as a real command against a real database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select, update

from mailproxy_models.db import now, session_scope
from mailproxy_models.events import MessageEvent
from mailproxy_models.messages import SENT, Message
from tests.models.factories import database, enqueue, message, tenant_with_account

MAIL_PROXY = str(Path(sys.executable).with_name("mail-proxy"))


def test_purge_deletes_only_what_the_client_has_taken(tmp_path, database_url):
    with database(database_url) as sessions:
        tenant_with_account(sessions)
        enqueue(sessions, [message(f"m{i}") for i in range(4)])
        long_ago = now() - 10 * 86400
        with session_scope(sessions) as session:
            # m0, m1: reported long ago; m2: reported, but a later bounce is not yet;
            # m3: never reported.
            reported = Message.id.in_(["m0", "m1", "m2"])
            session.execute(
                update(Message).where(reported).values(status=SENT, reported_ts=long_ago)
            )
            m2 = session.scalar(select(Message.pk).where(Message.id == "m2"))
            session.add(MessageEvent(message_pk=m2, kind="bounce", description="550 5.1.1"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROXY_")}
        env.update(MAILPROXY_DATABASE_URL=database_url, MAILPROXY_DATA_DIR=str(tmp_path))
        ran = subprocess.run(
            [MAIL_PROXY, "db", "purge", "--older-than-days", "7"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stderr
        assert "2 reported messages older than 7 days deleted" in ran.stdout
        with session_scope(sessions) as session:
            assert sorted(session.scalars(select(Message.id))) == ["m2", "m3"]
