"""Bounces and PEC receipts as real servers write them, for the end-to-end tests."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid


def dsn(
    to: str,
    recipient: str,
    status: str,
    diagnostic: str,
    original_headers: dict[str, str] | None = None,
    action: str = "failed",
) -> bytes:
    """An RFC 3464 report as Postfix writes it; the original's headers when given."""
    boundary = make_msgid(domain="b").strip("<>").replace("@", "-")
    original = ""
    if original_headers is not None:
        headers = "".join(f"{name}: {value}\r\n" for name, value in original_headers.items())
        original = f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n"
    text = (
        "From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {formatdate()}\r\n"
        f"Message-ID: {make_msgid(domain='mx.example.org')}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
        f"Your message could not be delivered to {recipient}.\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mail.example.org\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        f"{original}--{boundary}--\r\n"
    )
    return text.encode()


def plain_bounce(to: str, recipient: str, text: str) -> bytes:
    """A qmail-style bounce: plain text, no report part, none of the original's headers."""
    message = EmailMessage()
    message["From"] = "MAILER-DAEMON@qmail.example.net"
    message["To"] = to
    message["Subject"] = "failure notice"
    message["Date"] = formatdate()
    message.set_content(
        "Hi. This is the qmail-send program at qmail.example.net.\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
        f"<{recipient}>:\n{text}\n"
    )
    return message.as_bytes()


def auto_reply(to: str) -> bytes:
    message = EmailMessage()
    message["From"] = "someone@example.org"
    message["To"] = to
    message["Subject"] = "Out of Office: Order 1"
    message["Auto-Submitted"] = "auto-replied"
    message.set_content("I am away until Monday.")
    return message.as_bytes()


def pec_receipt(
    receipt_type: str,
    original_message_id: str,
    sender: str,
    recipient: str,
    error: str = "nessuno",
) -> bytes:
    """A PEC receipt: signed multipart with its daticert.xml, as providers send them."""
    daticert = f"""<?xml version="1.0" encoding="UTF-8"?>
<postacert tipo="{receipt_type}" errore="{error}">
  <intestazione>
    <mittente>{sender}</mittente>
    <destinatari tipo="certificato">{recipient}</destinatari>
    <risposte>{sender}</risposte>
    <oggetto>Fattura</oggetto>
  </intestazione>
  <dati>
    <gestore-emittente>Example PEC Provider</gestore-emittente>
    <data zona="+0100"><giorno>25/11/2026</giorno><ora>10:15:30</ora></data>
    <identificativo>opec.{receipt_type}@pec.example.net</identificativo>
    <msgid>{original_message_id.replace("<", "&lt;").replace(">", "&gt;")}</msgid>
    <consegna>{recipient}</consegna>
  </dati>
</postacert>
"""
    inner = EmailMessage()
    inner.set_content(f"Ricevuta di {receipt_type} del messaggio Fattura.")
    inner.add_attachment(
        daticert.encode(), maintype="application", subtype="xml", filename="daticert.xml"
    )
    outer = EmailMessage()
    outer["From"] = f"{receipt_type} <posta-certificata@pec.example.net>"
    outer["To"] = sender
    outer["Subject"] = f"{receipt_type.upper()}: Fattura"
    outer["Date"] = formatdate()
    outer["X-Ricevuta"] = receipt_type
    outer["X-Riferimento-Message-ID"] = original_message_id
    outer.make_mixed()
    outer.attach(inner)
    outer.add_attachment(
        b"\x30\x80 not a real signature",
        maintype="application",
        subtype="pkcs7-signature",
        filename="smime.p7s",
    )
    outer.replace_header(
        "Content-Type",
        outer["Content-Type"].replace("multipart/mixed", "multipart/signed")
        + '; protocol="application/pkcs7-signature"; micalg=sha-256',
    )
    return outer.as_bytes()
