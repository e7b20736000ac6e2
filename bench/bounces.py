"""Returned mail: how well and how fast bounces and receipts are read.

    .venv/bin/python bench/bounces.py [--mails 2000] [--database sqlite|postgres]
    .venv/bin/python bench/bounces.py --corpus DIR [--show-misses]

Without ``--corpus``: the parse rate over the test corpus (bounces and PEC receipts), then
the rate of one poll that reads, parses, correlates and records ``--mails`` bounces from an
IMAP mailbox (each for its own message), with the worker process's peak memory.

With ``--corpus DIR``: the agreement with sisimai's public test suite. DIR holds clones of
the public repositories sisimai/set-of-emails and sisimai/rb-sisimai (as ``set-of-emails``
and ``rb-sisimai``); nothing of them is part of this repository. Over the samples of
``maildir/bsd`` that rb-sisimai's ``test/public/*.rb`` tables have rows for, it prints:

- recognised: failure samples read as bounces (at least one bounce event);
- recipients: failure samples whose bounced recipients are as many as the expected rows,
  each a usable address (no pipe, path or bare domain) that the sample contains;
- hard/soft and reason: expected rows matched by our rows of that sample (as multisets,
  since the tables name no addresses), reasons compared by their sisimai name;
- false bounces: delivered / vacation / feedback samples read as bounces;
- crashes: samples the classifier could not read ("unparseable") or raised on;
- the same CR-only and CRLF copies of the samples (``maildir/mac``, ``maildir/dos``)
  giving the same result as the LF one;

and beside it what flufl.bounce alone finds in the same samples.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bounce_corpus import corpus_agreement  # noqa: E402
from imapclient import IMAPClient  # noqa: E402

from mailproxy_models.accounts import upsert_account  # noqa: E402
from mailproxy_models.db import session_scope  # noqa: E402
from mailproxy_models.instance import open_instance  # noqa: E402
from mailproxy_models.message_validation import MessageLimits  # noqa: E402
from mailproxy_models.messages import enqueue_messages  # noqa: E402
from mailproxy_models.migrate import upgrade  # noqa: E402
from mailproxy_models.settings import Settings  # noqa: E402
from mailproxy_models.tenants import create_tenant  # noqa: E402
from mailproxy_workers.inbound.classify import classify  # noqa: E402
from mailproxy_workers.mailbox_poll import poll_mailbox  # noqa: E402
from mailproxy_workers.runtime import WorkerRuntime  # noqa: E402
from tests.support.dovecot_server import Dovecot  # noqa: E402
from tests.support.returned_mail import dsn  # noqa: E402
from tests.support.servers import fresh_postgres_database, postgres_admin_url  # noqa: E402


def parse_rate() -> None:
    corpus = [
        p.read_bytes() for d in ("bounces", "pec") for p in (REPO / "tests/data" / d).glob("*.eml")
    ]
    rounds = 20
    started = time.perf_counter()
    for _ in range(rounds):
        for raw in corpus:
            classify(raw)
    elapsed = time.perf_counter() - started
    count = rounds * len(corpus)
    print(f"parse: {count / elapsed:8.0f} mails/s over {len(corpus)} corpus samples x {rounds}")


def poll_rate(mails: int, database_url: str, data_dir: Path, dovecot: Dovecot) -> None:
    upgrade(database_url)
    instance = open_instance(Settings(data_dir=data_dir, database_url=database_url))
    box = instance.box
    with session_scope(instance.sessions) as session:
        create_tenant(session, box, {"id": "acme"})
        upsert_account(
            session,
            box,
            {
                "tenant_id": "acme",
                "id": "main",
                "host": "127.0.0.1",
                "port": 25,
                "imap_host": "127.0.0.1",
                "imap_port": dovecot.port,
                "imap_tls": False,
                "imap_user": "bounce",
                "imap_password": "secret",
            },
        )
        payloads = [
            {"id": f"m{i}", "from": "a@example.com", "to": [f"u{i}@example.org"], "subject": "s"}
            for i in range(mails)
        ]
        enqueue_messages(session, "acme", payloads, MessageLimits(100, 50))
    client = IMAPClient("127.0.0.1", port=dovecot.port, ssl=False, timeout=30)
    client.login("bounce", "secret")
    for i in range(mails):
        headers = {"X-Mailproxy-ID": f"m{i}", "Message-ID": f"<m{i}@example.com>"}
        client.append(
            "INBOX",
            dsn("a@example.com", f"u{i}@example.org", "5.1.1", "550 5.1.1 unknown", headers),
        )
    client.logout()
    runtime = WorkerRuntime(instance, None, "bench", os.getpid(), None)  # type: ignore[arg-type]
    started = time.perf_counter()
    result = poll_mailbox(runtime, "acme", "main")
    elapsed = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"poll:  {result.read / elapsed:8.0f} mails/s  ({result.read} read, {result.recorded} "
        f"recorded in {elapsed:.2f} s, error {result.error}); peak RSS {peak_mb:.0f} MB"
    )
    instance.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--corpus", type=Path, help="clones of sisimai's two public repositories")
    parser.add_argument("--show-misses", action="store_true", help="list each disagreement")
    args = parser.parse_args()
    if args.corpus:
        corpus_agreement(args.corpus, args.show_misses)
        return
    parse_rate()
    with ExitStack() as stack:
        data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        dovecot = Dovecot(users={"bounce": "secret"}).start()
        stack.callback(dovecot.stop)
        if args.database == "postgres":
            admin = stack.enter_context(postgres_admin_url())
            url = stack.enter_context(fresh_postgres_database(admin))
        else:
            url = f"sqlite:///{data_dir / 'bench.sqlite'}"
        poll_rate(args.mails, url, data_dir, dovecot)


if __name__ == "__main__":
    main()
