"""Sending through mailproxy from Django: one POST, mailproxy delivers in the background."""

import uuid

import requests
from django.conf import settings


def send_order_mail(to: str, order: str) -> dict:
    message = {
        "id": f"order-{order}-{uuid.uuid4().hex[:8]}",  # your id: reports refer to it
        "account_id": settings.MAILPROXY_ACCOUNT,
        "from": "Shop <shop@example.com>",
        "to": [to],
        "subject": f"Your order {order}",
        "body": f"Order {order} ships today.",
    }
    answer = requests.post(
        f"{settings.MAILPROXY_URL.rstrip('/')}/commands/add-messages",
        json={"messages": [message]},
        headers={"Authorization": f"Bearer {settings.MAILPROXY_API_KEY}"},
        timeout=30,
    )
    answer.raise_for_status()
    result = answer.json()
    if result["rejected"]:
        raise RuntimeError(f"mailproxy refused the message: {result['rejected']}")
    return result
