"""The command line runs a named local instance in the background and works its messages.

One instance for the module, started by ``mail-proxy start NAME --detach`` (a real API,
worker and scheduler process on SQLite) against a real SMTP sink. Commands run in this
process through ``main()`` (the installed entry point) for speed; the error test runs the
installed ``mail-proxy`` script as its own process. The tests run in file order: the last
one stops and deletes the instance.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from mailproxy_api.cli import main
from tests.support.smtp_sink import SMTPSink
from tests.support.stack import wait_until

MAIL_PROXY = str(Path(sys.executable).with_name("mail-proxy"))
NAME = "cli-e2e"
FLAKY = "flaky@example.test"


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.code == 0, self.stderr
        return json.loads(self.stdout)


@dataclass
class Local:
    env: dict[str, str | None]
    home: Path
    config: Path
    sink: SMTPSink
    files: Path

    def run(self, *args: str) -> Ran:
        """``mail-proxy ARGS`` in this process, with this module's environment."""
        runner = CliRunner()
        with runner.isolation(env=self.env) as streams:
            try:
                main([*args])
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            return Ran(code, streams[0].getvalue().decode(), streams[1].getvalue().decode())

    def wait_status(self, msg_id: str, status: str, timeout: float = 20) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            message = self.run("messages", "show", msg_id, "--json").json()
            return message if message["status"] == status else None

        return wait_until(reached, timeout, interval=0.3)  # type: ignore[no-any-return]


def _eml(path: Path, to: str, subject: str, attachment: bytes | None = None) -> Path:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.com>"
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = f"<{path.stem}@example.com>"
    message["X-Campaign"] = "nov"
    message.set_content(f"{subject}: hello.")
    if attachment is not None:
        message.add_attachment(
            attachment, maintype="application", subtype="pdf", filename="invoice.pdf"
        )
    path.write_bytes(bytes(message))
    return path


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Iterator[Local]:
    base = tmp_path_factory.mktemp("cli")
    sink = SMTPSink(rcpt_rules={FLAKY: ["550 5.1.1 No such user", "250 OK"]})
    sink.start()
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("MAILPROXY_")}
    env.update(
        MAILPROXY_HOME=str(base / "instances"),
        MAILPROXY_CLI_CONFIG=str(base / "config" / "contexts.json"),
        MAILPROXY_SWEEP_INTERVAL="1",
        MAILPROXY_RETRY_SCHEDULE="1",
        MAILPROXY_SMTP_TIMEOUT="5",
        COLUMNS="200",
    )
    files = base / "eml"
    files.mkdir()
    here = Local(env, base / "instances", base / "config" / "contexts.json", sink, files)
    started = here.run("start", NAME, "--detach")
    assert started.code == 0, started.stderr
    try:
        yield here
    finally:
        here.run("stop", NAME)
        sink.stop()


def test_a_detached_instance_is_listed_running_and_saved_as_the_current_context(local):
    listed = local.run("list", "--json").json()
    assert [(i["name"], i["state"]) for i in listed] == [(NAME, "running")]
    url = listed[0]["url"]
    status = local.run("status", NAME)
    assert status.code == 0 and "running" in status.stdout and url in status.stdout
    assert "waiting: immediate 0" in status.stdout

    contexts = local.run("context", "list", "--json").json()
    assert contexts == [{"name": NAME, "url": url, "current": True}]
    assert stat.S_IMODE(local.config.stat().st_mode) == 0o600
    assert stat.S_IMODE((local.home / NAME / "instance.json").stat().st_mode) == 0o600


def test_eml_files_are_sent_and_their_events_shown(local):
    assert local.run("tenants", "create", "acme").code == 0
    port = str(local.sink.port)
    added = local.run("accounts", "add", "main", "--tenant", "acme", "--host", "127.0.0.1",
                      "--port", port, "--tls", "none", "--default")  # fmt: skip
    assert added.code == 0, added.stderr
    assert local.run("accounts", "list", "--json").json()[0]["port"] == int(port)

    plain = _eml(local.files / "plain.eml", "Alice <alice@example.org>", "Plain")
    invoice = _eml(local.files / "invoice.eml", "bob@example.org", "Invoice", b"%PDF-1.4 x")
    sent = local.run("send", str(plain), str(invoice), "--tenant", "acme", "--priority", "0")
    assert sent.code == 0, sent.stderr
    assert "2 message(s) queued" in sent.stdout

    def both_sent() -> list[dict[str, Any]] | None:
        found = local.run("messages", "list", "--json", "--status", "sent").json()
        return found if len(found) == 2 else None

    messages = wait_until(both_sent, 20, interval=0.3)
    received = {r.message()["Subject"]: r.message() for r in local.sink.wait_for(2)}
    assert received["Plain"]["Message-ID"] == "<plain@example.com>"
    assert received["Plain"]["X-Campaign"] == "nov"
    [pdf] = list(received["Invoice"].iter_attachments())
    assert pdf.get_filename() == "invoice.pdf" and pdf.get_content() == b"%PDF-1.4 x"

    shown = local.run("messages", "show", messages[0]["id"])
    assert shown.code == 0 and "events" in shown.stdout
    assert "sent" in shown.stdout and "250" in shown.stdout


def test_an_errored_message_is_delivered_after_a_retry(local):
    flaky = _eml(local.files / "flaky.eml", FLAKY, "Flaky")
    assert local.run("send", str(flaky), "--tenant", "acme", "--id", "flaky-1").code == 0
    errored = local.wait_status("flaky-1", "error")
    assert "550" in errored["error"]

    retried = local.run("messages", "retry", "flaky-1")
    assert retried.code == 0 and "1 message(s) will be sent again" in retried.stdout
    delivered = local.wait_status("flaky-1", "sent")
    kinds = [(e["kind"], e["description"]) for e in delivered["events"]]
    assert ("deferred", "retry requested by admin") in kinds and kinds[-1][0] == "sent"

    again = local.run("messages", "retry", "flaky-1", "nope")
    assert again.code == 1
    assert "already sent" in again.stderr and "nope: not found" in again.stderr


def test_deleted_messages_are_gone_and_deleting_again_exits_1(local):
    assert local.run("messages", "delete", "flaky-1").code == 0
    ids = [m["id"] for m in local.run("messages", "list", "--json").json()]
    assert "flaky-1" not in ids and len(ids) == 2
    again = local.run("messages", "delete", "flaky-1")
    assert again.code == 1 and "not found" in again.stderr


def test_suppressed_addresses_are_listed_refused_and_removed(local):
    added = local.run(
        "suppressions", "add", "Gone@Example.org", "--reason", "left", "--tenant", "acme"
    )
    assert added.code == 0 and "1 added" in added.stdout
    listed = local.run("suppressions", "list", "--tenant", "acme", "--json").json()
    # Recipients refused for good earlier in this module (5.1.1) are listed by their bounce.
    assert [
        (s["address"], s["source"], s["reason"]) for s in listed if s["source"] != "bounce"
    ] == [("gone@example.org", "manual", "left")]
    gone = _eml(local.files / "gone.eml", "gone@example.org", "Gone")
    refused = local.run("send", str(gone), "--tenant", "acme", "--id", "gone-1")
    assert refused.code == 1 and "suppression list" in refused.stdout + refused.stderr
    assert local.run("suppressions", "remove", "gone@example.org", "--tenant", "acme").code == 0
    again = local.run("suppressions", "remove", "gone@example.org", "--tenant", "acme")
    assert again.code == 1 and "not on the suppression list" in again.stderr


def test_errors_are_a_sentence_with_exit_1_and_bad_usage_exits_2(local):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROXY_")}
    env.update({k: v for k, v in local.env.items() if v is not None})
    env["MAILPROXY_TOKEN"] = "not-the-token"
    wrong = subprocess.run(
        [MAIL_PROXY, "messages", "list"], env=env, capture_output=True, text=True, timeout=60
    )
    assert wrong.returncode == 1 and "401" in wrong.stderr
    assert "Traceback" not in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1

    unknown = local.run("messages", "list", "--no-such-option")
    assert unknown.code == 2 and "No such option" in unknown.stderr
    no_name = local.run("start", "--detach")
    assert no_name.code == 2 and "needs an instance name" in no_name.stderr


def test_a_stopped_instance_says_so_and_delete_removes_its_directory(local):
    refused = local.run("delete", NAME, "--yes")
    assert refused.code == 1 and "is running" in refused.stderr

    started = time.monotonic()
    assert local.run("stop", NAME).code == 0
    assert time.monotonic() - started < 30
    assert "not running" in local.run("stop", NAME).stdout
    status = local.run("status", NAME)
    assert status.code == 0 and "stopped" in status.stdout
    assert local.run("list", "--json").json()[0]["state"] == "stopped"

    assert local.run("delete", NAME, "--yes").code == 0
    assert not (local.home / NAME).exists()
    assert local.run("context", "list", "--json").json() == []
