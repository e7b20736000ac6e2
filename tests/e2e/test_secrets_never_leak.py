"""No secret is ever returned by the API or written to a log: a whole run of the stack with
passwords in play, every answer and every log line searched for them."""

from __future__ import annotations

import logging

from tests.support.smtp_sink import SMTPSink
from tests.support.stack import Stack, make_messages, wait_until

SECRETS = {
    "smtp password": "smtp-pw-XK91",
    "wrong smtp password": "wrong-pw-QQ77",
    "client password": "client-pw-ZZ12",
    "client token": "client-token-YY34",
    "wrong imap password": "imap-pw-MM56",
}


def test_no_secret_in_any_answer_or_log(tmp_path, postgres_url, redis_url, caplog, dovecot):
    caplog.set_level(logging.DEBUG)
    sink = SMTPSink(users={"mailer": SECRETS["smtp password"]}, auth_required=True)
    sink.start()
    stack = Stack(tmp_path, postgres_url, redis_url, retry_schedule=[1], imap_poll_interval=0.5)
    answers: list[str] = []
    original_call = stack.call

    def recording_call(*args, **kwargs):
        answer = original_call(*args, **kwargs)
        answers.append(answer.get_data(as_text=True))
        return answer

    stack.call = recording_call  # type: ignore[method-assign]
    try:
        key = stack.setup_tenant(
            sink.port,
            account={
                "user": "mailer",
                "password": SECRETS["smtp password"],
                "allow_insecure_auth": True,  # the sink offers no TLS
            },
        )
        stack.call(
            "POST",
            "/account",
            token=key,
            json={
                "id": "broken",
                "host": "127.0.0.1",
                "port": sink.port,
                "use_tls": False,
                "user": "mailer",
                "password": SECRETS["wrong smtp password"],
                "allow_insecure_auth": True,  # the sink offers no TLS; the login must be tried
                # Its bounce mailbox refuses the login too: the error is logged and shown.
                "imap_host": "127.0.0.1",
                "imap_port": dovecot.port,
                "imap_tls": False,
                "imap_user": "bounce",
                "imap_password": SECRETS["wrong imap password"],
            },
        )
        stack.call(
            "PUT",
            "/tenant/acme",
            token=key,
            json={
                "client_auth": {
                    "method": "basic",
                    "user": "app",
                    "password": SECRETS["client password"],
                }
            },
        )
        stack.call(
            "PUT",
            "/tenant/acme",
            token=key,
            json={"client_auth": {"method": "bearer", "token": SECRETS["client token"]}},
        )
        stack.start_worker("w1", beat=True)  # the sweeper wakes the retries
        good = make_messages(2, account_id="main")
        bad = make_messages(2, prefix="BROKEN", account_id="broken")
        stack.call("POST", "/commands/add-messages", token=key, json={"messages": good + bad})
        sink.wait_for(2, timeout=30)

        def broken_account_marked_failing():
            account = stack.call("GET", "/account/broken", token=key).json["account"]
            mailbox_failed = (account["imap_status"] or {}).get("failures")
            deferred = len(stack.all_messages(status="deferred")) == 2
            return account["failing_since"] and mailbox_failed and deferred

        wait_until(broken_account_marked_failing, timeout=60, interval=0.3)
        for path in (
            "/messages?include_history=true",
            "/accounts",
            "/account/main",
            "/account/broken",
            "/tenant/acme",
            "/tenants",
            "/audit-log",
            "/status",
            "/tenant/acme/api-keys",
            "/message/BROKEN-00000",
        ):
            stack.call("GET", path)
            stack.call("GET", path, token=key)
    finally:
        stack.stop()
        sink.stop()
    events = [a for a in answers if "authentication failed" in a]
    assert events, "the failing account's events were read"
    worker_log = (tmp_path / "logs" / "w1.log").read_text()
    assert "authentication failed" in worker_log  # the log was written, and is searched
    assert "mailbox poll failed" in worker_log
    texts = {"API answers": "\n".join(answers), "worker log": worker_log, "API log": caplog.text}
    leaks = [
        (what, where)
        for what, secret in SECRETS.items()
        for where, text in texts.items()
        if secret in text
    ]
    assert not leaks, leaks
