"""Build a genro-mail-proxy 0.7.0 instance with its own code (run by its virtualenv's Python).

    python genro_instance.py INSTANCE_DIR SMTP_PORT

writes INSTANCE_DIR/mail_service.db through genro-mail-proxy's storage classes, with its
field encryption on (key from MAIL_PROXY_ENCRYPTION_KEY), and prints JSON: the tenants'
API keys as genro-mail-proxy issued them, and what was queued.
"""

import asyncio
import base64
import json
import sys
import time

from core.mail_proxy.proxy_base import MailProxyBase
from core.mail_proxy.proxy_config import ProxyConfig

FAR_FUTURE = 4_102_444_800  # 2100-01-01


def _payload(subject: str, **extra):
    return {
        "from": "Shop <shop@example.com>",
        "to": ["customer@example.org"],
        "subject": subject,
        "body": f"Body of {subject}",
        "content_type": "plain",
        **extra,
    }


async def build(instance_dir: str, smtp_port: int) -> dict:
    proxy = MailProxyBase(ProxyConfig(db_path=f"{instance_dir}/mail_service.db"))
    assert proxy.encryption_key is not None, "MAIL_PROXY_ENCRYPTION_KEY is not set"
    await proxy.init()
    tenants = proxy.db.table("tenants")
    accounts = proxy.db.table("accounts")
    messages = proxy.db.table("messages")
    keys = {}
    for tenant_id in ("acme", "beta"):
        keys[tenant_id] = await tenants.add({"id": tenant_id, "name": tenant_id.title()})
    await tenants.suspend_batch("beta", "paused")
    for tenant_id in ("acme", "beta"):
        account = {
            "id": "main",
            "tenant_id": tenant_id,
            "host": "127.0.0.1",
            "port": smtp_port,
            "user": f"{tenant_id}-user",
            "password": f"{tenant_id}-smtp-secret",
            "use_tls": False,
        }
        if tenant_id == "acme":
            account.update(imap_host="127.0.0.1", imap_port=993, imap_password="acme-imap-secret")
        await accounts.add(account)
    attachment = {
        "filename": "note.txt",
        "storage_path": "base64:" + base64.b64encode(b"attached note").decode(),
        "fetch_mode": "base64",
    }
    entries = [
        {"id": "acme-now", "priority": 0, "payload": _payload("Now")},
        {"id": "acme-batch", "priority": 3, "batch_code": "nov", "payload": _payload("Batch")},
        {"id": "acme-file", "priority": 1, "payload": _payload("File", attachments=[attachment])},
        {"id": "acme-later", "deferred_ts": FAR_FUTURE, "payload": _payload("Later")},
        {"id": "acme-sent", "payload": _payload("Already sent")},
    ]
    await messages.insert_batch([{**e, "tenant_id": "acme", "account_id": "main"} for e in entries])
    await messages.insert_batch(
        [
            {
                "id": "beta-1",
                "tenant_id": "beta",
                "account_id": "main",
                "payload": _payload("Beta"),
            },
            {
                "id": "beta-held",
                "tenant_id": "beta",
                "account_id": "main",
                "batch_code": "paused",
                "payload": _payload("Held"),
            },
        ]
    )
    sent = await messages.get("acme-sent", "acme")
    await messages.mark_sent(sent["pk"], int(time.time()))
    await proxy.db.close()
    return {"keys": keys}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(build(sys.argv[1], int(sys.argv[2])))))
