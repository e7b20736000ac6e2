"""Regenerates tests/data/pec/*.eml and *.json: run it with the project venv from the repo root.

Expected results are written here by hand, independently of the parser, so a parser change
that alters a result shows up as a corpus test failure. Signatures use a throwaway key made
at each run (the parser does not verify them), so the .eml bytes change on every run.
"""

import base64
import datetime as dt
import json
import pathlib
import textwrap

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

OUT = pathlib.Path(__file__).resolve().parent

KEY = ec.generate_private_key(ec.SECP256R1())
_name = x509.Name(
    [
        x509.NameAttribute(NameOID.COMMON_NAME, "posta-certificata@pec.example.net"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example PEC Provider S.p.A."),
        x509.NameAttribute(NameOID.COUNTRY_NAME, "IT"),
    ]
)
CERT = (
    x509.CertificateBuilder()
    .subject_name(_name)
    .issuer_name(_name)
    .public_key(KEY.public_key())
    .serial_number(4242)
    .not_valid_before(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    .not_valid_after(dt.datetime(2028, 1, 1, tzinfo=dt.UTC))
    .add_extension(
        x509.SubjectAlternativeName([x509.RFC822Name("posta-certificata@pec.example.net")]),
        critical=False,
    )
    .sign(KEY, hashes.SHA256())
)

MSGID = "<20261125.abc@mailproxy.example.com>"
SENDER = "shop@pec.example.com"
PROVIDER = "Example PEC Provider S.p.A."
DEST = "mario.rossi@pec.example.org"


def ts(day, time, zone):
    d = dt.datetime.strptime(f"{day} {time}", "%d/%m/%Y %H:%M:%S")
    sign = 1 if zone[0] == "+" else -1
    off = dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])) * sign
    return d.replace(tzinfo=dt.timezone(off)).timestamp()


def b64(data: bytes) -> str:
    return base64.encodebytes(data).decode()


def daticert(
    tipo,
    errore="nessuno",
    destinatari=((DEST, "certificato"),),
    oggetto="Fattura 12",
    day="25/11/2026",
    time="10:15:30",
    zone="+0100",
    ident="opec21.20261125101530.12345.01.1.1@pec.example.net",
    msgid=MSGID,
    ricevuta=None,
    consegna=(),
    ricezione=(),
    errore_esteso=None,
    encoding="UTF-8",
):
    dest = "\n".join(
        f'    <destinatari tipo="{kind}">{addr}</destinatari>' for addr, kind in destinatari
    )
    lines = [
        f'<?xml version="1.0" encoding="{encoding}"?>',
        f'<postacert tipo="{tipo}" errore="{errore}">',
        "  <intestazione>",
        f"    <mittente>{SENDER}</mittente>",
        dest,
        f"    <risposte>{SENDER}</risposte>",
        f"    <oggetto>{oggetto}</oggetto>",
        "  </intestazione>",
        "  <dati>",
        f"    <gestore-emittente>{PROVIDER}</gestore-emittente>",
        f'    <data zona="{zone}">',
        f"      <giorno>{day}</giorno>",
        f"      <ora>{time}</ora>",
        "    </data>",
        f"    <identificativo>{ident}</identificativo>",
    ]
    if msgid:
        lines.append(f"    <msgid>{msgid.replace('<', '&lt;').replace('>', '&gt;')}</msgid>")
    if ricevuta:
        lines.append(f'    <ricevuta tipo="{ricevuta}" />')
    lines += [f"    <consegna>{c}</consegna>" for c in consegna]
    lines += [f"    <ricezione>{c}</ricezione>" for c in ricezione]
    if errore_esteso:
        lines.append(f"    <errore-esteso>{errore_esteso}</errore-esteso>")
    lines += ["  </dati>", "</postacert>", ""]
    return "\n".join(lines).encode(encoding)


def text_part(text, charset="UTF-8"):
    body = b64(text.encode(charset))
    return (
        f'Content-Type: text/plain; charset="{charset}"\n'
        "Content-Transfer-Encoding: base64\n\n" + body
    )


def html_part(text):
    html = f"<html><body><p>{text}</p></body></html>"
    return 'Content-Type: text/html; charset="UTF-8"\nContent-Transfer-Encoding: base64\n\n' + b64(
        html.encode()
    )


def xml_part(data: bytes, name="daticert.xml", plain=False):
    body = data.decode("ascii") if plain else b64(data)
    return (
        f'Content-Type: application/xml; name="{name}"\n'
        f"Content-Transfer-Encoding: {'7bit' if plain else 'base64'}\n"
        f'Content-Disposition: inline; filename="{name}"\n\n' + body
    )


def eml_part(original: str):
    return (
        'Content-Type: message/rfc822; name="postacert.eml"\n'
        'Content-Disposition: inline; filename="postacert.eml"\n\n' + original
    )


def multipart(subtype, parts, boundary, extra=""):
    body = "".join(f"--{boundary}\n{p.rstrip(chr(10))}\n" for p in parts) + f"--{boundary}--\n"
    head = f'Content-Type: multipart/{subtype}; boundary="{boundary}"{extra}\n\n'
    return head + "This is a multi-part message in MIME format.\n" + body


def signed(inner: str, boundary: str):
    canonical = inner.replace("\n", "\r\n").encode()
    sig = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(canonical)
        .add_signer(CERT, KEY, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature])
    )
    p7s = (
        'Content-Type: application/pkcs7-signature; name="smime.p7s"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="smime.p7s"\n\n' + b64(sig)
    )
    return multipart(
        "signed",
        [inner, p7s],
        boundary,
        '; protocol="application/pkcs7-signature"; micalg=sha-256',
    )


def headers(subject, ricevuta=None, trasporto=None, ref=MSGID, to=SENDER, extra=()):
    h = [
        "Return-Path: <posta-certificata@pec.example.net>",
        "Received: from mx.pec.example.net (mx.pec.example.net [192.0.2.10])\n"
        "\tby imap.pec.example.com; Wed, 25 Nov 2026 10:15:31 +0100",
        "Date: Wed, 25 Nov 2026 10:15:30 +0100",
        f"Subject: {subject}",
        f'From: "Per conto di: {SENDER}" <posta-certificata@pec.example.net>',
        f"To: {to}",
        "Message-ID: <opec21.20261125101530.12345.01.1.1@pec.example.net>",
    ]
    if ricevuta:
        h.append(f"X-Ricevuta: {ricevuta}")
    if trasporto:
        h.append(f"X-Trasporto: {trasporto}")
    if ref:
        h.append(f"X-Riferimento-Message-ID: {ref}")
    h += list(extra)
    h.append("MIME-Version: 1.0")
    return "\n".join(h) + "\n"


def receipt_mail(subject, ricevuta, human, xml, extra_parts=(), sign=True, ref=MSGID):
    alt = multipart("alternative", [text_part(human), html_part(human)], "alt-b0")
    inner = multipart("mixed", [alt, xml_part(xml, plain=not sign), *extra_parts], "mixed-b1")
    body = signed(inner, "signed-b2") if sign else inner
    return headers(subject, ricevuta=ricevuta, ref=ref) + body


def expected(
    receipt_type,
    kind,
    recipients,
    *,
    msgid=MSGID,
    t=None,
    error=None,
    detail=None,
    provider=PROVIDER,
    ident="opec21.20261125101530.12345.01.1.1@pec.example.net",
    subject="Fattura 12",
    sender=SENDER,
    corr=(),
):
    return {
        "receipt_type": receipt_type,
        "event_kind": kind,
        "original_message_id": msgid,
        "recipients": list(recipients),
        "ts": ts("25/11/2026", "10:15:30", "+0100") if t is None else t,
        "error": error,
        "error_detail": detail,
        "provider": provider,
        "identifier": ident,
        "subject": subject,
        "sender": sender,
        "correlation_ids": list(corr),
    }


def partial(receipt_type, kind, msgid=MSGID, corr=()):
    return {
        "receipt_type": receipt_type,
        "event_kind": kind,
        "original_message_id": msgid,
        "recipients": [],
        "ts": None,
        "error": None,
        "error_detail": None,
        "provider": None,
        "identifier": None,
        "subject": None,
        "sender": None,
        "correlation_ids": list(corr),
    }


ORIGINAL = textwrap.dedent(f"""\
    Date: Wed, 25 Nov 2026 10:15:28 +0100
    From: {SENDER}
    To: {DEST}
    Subject: Fattura 12
    Message-ID: {MSGID}
    X-Mailproxy-ID: inv-42
    X-Genro-Mail-ID: inv-42
    X-TipoRicevuta: completa
    MIME-Version: 1.0
    Content-Type: multipart/mixed; boundary="orig-b9"

    --orig-b9
    Content-Type: text/plain; charset="UTF-8"

    Gentile cliente, in allegato la fattura 12.
    --orig-b9
    Content-Type: application/pdf; name="fattura-12.pdf"
    Content-Transfer-Encoding: base64
    Content-Disposition: attachment; filename="fattura-12.pdf"

    JVBERi0xLjQKJcfsj6IKJSVFT0YK
    --orig-b9--
    """)

SAMPLES = {}


def add(name, eml, exp):
    SAMPLES[name] = (eml, exp)


# 1. accettazione, one recipient
add(
    "accettazione-single",
    receipt_mail(
        "ACCETTAZIONE: Fattura 12",
        "accettazione",
        f'Il giorno 25/11/2026 alle ore 10:15:30 (+0100) il messaggio "Fattura 12" '
        f'proveniente da "{SENDER}" ed indirizzato a: {DEST} ("posta certificata") '
        "è stato accettato dal sistema ed inoltrato.",
        daticert("accettazione"),
    ),
    expected("accettazione", "pec_acceptance", [DEST]),
)

# 2. accettazione, several recipients (one of them outside PEC, one in mixed case)
add(
    "accettazione-multi",
    receipt_mail(
        "ACCETTAZIONE: Fattura 12",
        "accettazione",
        "Il messaggio è stato accettato dal sistema ed inoltrato a tre destinatari.",
        daticert(
            "accettazione",
            destinatari=(
                (DEST, "certificato"),
                ("Luigi.Verdi@PEC.Example.org", "certificato"),
                ("anna.bianchi@example.net", "esterno"),
            ),
        ),
    ),
    expected(
        "accettazione",
        "pec_acceptance",
        [DEST, "luigi.verdi@pec.example.org", "anna.bianchi@example.net"],
    ),
)

# 3. non-accettazione with errore-esteso
add(
    "non-accettazione",
    receipt_mail(
        "AVVISO DI NON ACCETTAZIONE: Fattura 12",
        "non-accettazione",
        "Il messaggio non è stato accettato: dimensione superiore al limite consentito.",
        daticert(
            "non-accettazione",
            errore="altro",
            errore_esteso="Messaggio di dimensione superiore al limite consentito (100 MB)",
        ),
    ),
    expected(
        "non-accettazione",
        "pec_error",
        [DEST],
        error="altro",
        detail="Messaggio di dimensione superiore al limite consentito (100 MB)",
    ),
)

# 4. presa-in-carico: sent by the recipients' provider, <ricezione> names who it covers
add(
    "presa-in-carico",
    receipt_mail(
        "PRESA IN CARICO: Fattura 12",
        "presa-in-carico",
        f"Il messaggio è stato preso in carico per il destinatario {DEST}.",
        daticert(
            "presa-in-carico",
            destinatari=((DEST, "certificato"), ("ufficio@pec.example.com", "certificato")),
            ricezione=(DEST,),
            ident="opec77.20261125101531.777.02.1.5@pec.example.org",
            time="10:15:31",
        ),
    ),
    expected(
        "presa-in-carico",
        "pec_acceptance",
        [DEST],
        t=ts("25/11/2026", "10:15:31", "+0100"),
        ident="opec77.20261125101531.777.02.1.5@pec.example.org",
    ),
)

# 5. avvenuta-consegna breve (no attached original in this provider's form)
add(
    "avvenuta-consegna-breve",
    receipt_mail(
        "CONSEGNA: Fattura 12",
        "avvenuta-consegna",
        f"Il messaggio è stato consegnato nella casella di destinazione {DEST}.",
        daticert(
            "avvenuta-consegna",
            ricevuta="breve",
            consegna=(DEST,),
            zone="+0200",
            day="30/06/2026",
            time="23:59:59",
        ),
    ),
    expected(
        "avvenuta-consegna",
        "pec_delivery",
        [DEST],
        t=ts("30/06/2026", "23:59:59", "+0200"),
    ),
)

# 6. avvenuta-consegna completa with postacert.eml carrying our correlation headers
add(
    "avvenuta-consegna-completa",
    receipt_mail(
        "CONSEGNA: Fattura 12",
        "avvenuta-consegna",
        f"Il messaggio è stato consegnato nella casella di destinazione {DEST}.",
        daticert("avvenuta-consegna", ricevuta="completa", consegna=(DEST,)),
        extra_parts=[eml_part(ORIGINAL)],
    ),
    expected("avvenuta-consegna", "pec_delivery", [DEST], corr=["inv-42"]),
)

# 7. avvenuta-consegna sintetica
add(
    "avvenuta-consegna-sintetica",
    receipt_mail(
        "CONSEGNA: Fattura 12",
        "avvenuta-consegna",
        f"Il messaggio è stato consegnato a {DEST}.",
        daticert("avvenuta-consegna", ricevuta="sintetica", consegna=(DEST,)),
    ),
    expected("avvenuta-consegna", "pec_delivery", [DEST]),
)

# 8. errore-consegna, no-dest
add(
    "errore-consegna-no-dest",
    receipt_mail(
        "AVVISO DI MANCATA CONSEGNA: Fattura 12",
        "errore-consegna",
        f"Il messaggio non è stato consegnato a {DEST}: utente sconosciuto.",
        daticert(
            "errore-consegna",
            errore="no-dest",
            consegna=(DEST,),
            errore_esteso="5.1.1 - user unknown",
        ),
    ),
    expected(
        "errore-consegna",
        "pec_error",
        [DEST],
        error="no-dest",
        detail="5.1.1 - user unknown",
    ),
)

# 9. preavviso-errore-consegna: the provider has had no delivery receipt in time
add(
    "preavviso-errore-consegna",
    receipt_mail(
        "AVVISO DI MANCATA CONSEGNA PER SUP. TEMPO MASSIMO: Fattura 12",
        "preavviso-errore-consegna",
        "Il gestore del destinatario potrebbe non essere in grado di consegnare il messaggio.",
        daticert(
            "preavviso-errore-consegna",
            errore="altro",
            consegna=(DEST,),
            day="26/11/2026",
            errore_esteso="Non è pervenuta la ricevuta di avvenuta consegna entro 24 ore",
        ),
    ),
    expected(
        "preavviso-errore-consegna",
        "pec_error",
        [DEST],
        t=ts("26/11/2026", "10:15:30", "+0100"),
        error="altro",
        detail="Non è pervenuta la ricevuta di avvenuta consegna entro 24 ore",
    ),
)

# 10. rilevazione-virus
add(
    "rilevazione-virus",
    receipt_mail(
        "PROBLEMA DI SICUREZZA: Fattura 12",
        "rilevazione-virus",
        "Il messaggio contiene un virus informatico e non è stato consegnato.",
        daticert(
            "rilevazione-virus",
            errore="virus",
            consegna=(DEST,),
            errore_esteso="Virus rilevato: EICAR-Test-File",
        ),
    ),
    expected(
        "rilevazione-virus",
        "pec_error",
        [DEST],
        error="virus",
        detail="Virus rilevato: EICAR-Test-File",
    ),
)

# 11. unsigned multipart/mixed receipt
add(
    "unsigned-accettazione",
    receipt_mail(
        "ACCETTAZIONE: Fattura 12",
        "accettazione",
        "Il messaggio è stato accettato dal sistema ed inoltrato.",
        daticert("accettazione"),
        sign=False,
    ),
    expected("accettazione", "pec_acceptance", [DEST]),
)


# 12. opaque application/pkcs7-mime signed receipt
def opaque(inner: str) -> str:
    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(inner.replace("\n", "\r\n").encode())
        .add_signer(CERT, KEY, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    return (
        'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="smime.p7m"\n\n' + b64(der)
    )


_inner = multipart(
    "mixed",
    [
        text_part(f"Il messaggio è stato consegnato a {DEST}."),
        xml_part(daticert("avvenuta-consegna", ricevuta="completa", consegna=(DEST,))),
    ],
    "opaque-b1",
)
add(
    "opaque-pkcs7-mime-avvenuta-consegna",
    headers("CONSEGNA: Fattura 12", ricevuta="avvenuta-consegna") + opaque(_inner),
    expected("avvenuta-consegna", "pec_delivery", [DEST]),
)

# 13. posta-certificata transport envelope: a PEC received, not a receipt
_env_inner = multipart(
    "mixed",
    [
        text_part("Messaggio di posta certificata inviato da shop@pec.example.com"),
        xml_part(daticert("posta-certificata")),
        eml_part(ORIGINAL),
    ],
    "env-b1",
)
add(
    "busta-posta-certificata",
    headers("POSTA CERTIFICATA: Fattura 12", trasporto="posta-certificata", ref=None, to=DEST)
    + signed(_env_inner, "env-b2"),
    None,
)

# 14. anomaly envelope
_anom_inner = multipart(
    "mixed",
    [
        text_part("Il messaggio originale è stato ricevuto ma non ha superato i controlli."),
        eml_part(ORIGINAL),
    ],
    "anom-b1",
)
add(
    "busta-anomalia",
    headers("ANOMALIA MESSAGGIO: Fattura 12", trasporto="errore", ref=None, to=DEST)
    + signed(_anom_inner, "anom-b2"),
    None,
)

# 15. daticert.xml malformed (truncated): partial receipt from headers
_broken = daticert("avvenuta-consegna", consegna=(DEST,))[:-60]
add(
    "daticert-malformed",
    receipt_mail(
        "CONSEGNA: Fattura 12",
        "avvenuta-consegna",
        f"Il messaggio è stato consegnato a {DEST}.",
        _broken,
    ),
    partial("avvenuta-consegna", "pec_delivery"),
)

# 16. daticert.xml with an entity-expansion attempt: must not expand; partial
_laughs = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    "<!DOCTYPE postacert [\n"
    '  <!ENTITY lol "lol">\n'
    + "".join(
        f'  <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n"
    '<postacert tipo="accettazione" errore="nessuno">\n'
    "  <intestazione><mittente>shop@pec.example.com</mittente>\n"
    '  <destinatari tipo="certificato">mario.rossi@pec.example.org</destinatari>\n'
    "  <oggetto>&lol9;</oggetto></intestazione>\n"
    "  <dati><gestore-emittente>Example PEC Provider S.p.A.</gestore-emittente></dati>\n"
    "</postacert>\n"
).encode()
add(
    "daticert-entity-expansion",
    receipt_mail(
        "ACCETTAZIONE: Fattura 12",
        "accettazione",
        "Il messaggio è stato accettato.",
        _laughs,
    ),
    partial("accettazione", "pec_acceptance"),
)

# 16b. daticert.xml with an external entity (file read attempt): must not resolve; partial
_xxe = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE postacert [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>\n'
    b'<postacert tipo="errore-consegna" errore="no-dest">\n'
    b"  <intestazione><mittente>shop@pec.example.com</mittente>\n"
    b"  <oggetto>&xxe;</oggetto></intestazione>\n"
    b"  <dati><consegna>mario.rossi@pec.example.org</consegna></dati>\n"
    b"</postacert>\n"
)
add(
    "daticert-external-entity",
    receipt_mail(
        "AVVISO DI MANCATA CONSEGNA: Fattura 12",
        "errore-consegna",
        "Il messaggio non è stato consegnato.",
        _xxe,
    ),
    partial("errore-consegna", "pec_error"),
)

# 17. ISO-8859-1 text part (quoted-printable) and ISO-8859-1 daticert in base64
_latin_text = (
    'Content-Type: text/plain; charset="ISO-8859-1"\n'
    "Content-Transfer-Encoding: quoted-printable\n\n"
    "Il messaggio =E8 stato consegnato nella casella di destinazione della citt=E0.\n"
)
_latin_inner = multipart(
    "mixed",
    [
        _latin_text,
        xml_part(
            daticert(
                "avvenuta-consegna",
                ricevuta="breve",
                consegna=(DEST,),
                oggetto="Fattura n. 7 - attività di città",
                encoding="ISO-8859-1",
            )
        ),
    ],
    "latin-b1",
)
add(
    "latin1-avvenuta-consegna",
    headers(
        "=?ISO-8859-1?Q?CONSEGNA:_Fattura_n._7_-_attivit=E0_di_citt=E0?=",
        ricevuta="avvenuta-consegna",
    )
    + signed(_latin_inner, "latin-b2"),
    expected(
        "avvenuta-consegna",
        "pec_delivery",
        [DEST],
        subject="Fattura n. 7 - attività di città",
    ),
)

# 18. header says accettazione, signed daticert says avvenuta-consegna: daticert wins
add(
    "tipo-disagreement",
    receipt_mail(
        "CONSEGNA: Fattura 12",
        "accettazione",
        f"Il messaggio è stato consegnato a {DEST}.",
        daticert("avvenuta-consegna", ricevuta="completa", consegna=(DEST,)),
    ),
    expected("avvenuta-consegna", "pec_delivery", [DEST]),
)

# 19. ordinary mail
add(
    "normal-mail",
    textwrap.dedent(f"""\
        Date: Wed, 25 Nov 2026 10:20:00 +0100
        From: mario.rossi@example.org
        To: {SENDER}
        Subject: Re: Fattura 12
        Message-ID: <reply.1@example.org>
        In-Reply-To: {MSGID}
        MIME-Version: 1.0
        Content-Type: text/plain; charset="UTF-8"

        Grazie, ricevuta.
        """),
    None,
)

# 20. ordinary DSN bounce
add(
    "dsn-bounce",
    textwrap.dedent("""\
        Date: Wed, 25 Nov 2026 10:20:00 +0100
        From: MAILER-DAEMON@mx.example.net
        To: bounces@mailproxy.example.com
        Subject: Undelivered Mail Returned to Sender
        Message-ID: <dsn.1@mx.example.net>
        MIME-Version: 1.0
        Content-Type: multipart/report; report-type=delivery-status; boundary="dsn-b"

        --dsn-b
        Content-Type: text/plain

        Your message could not be delivered.
        --dsn-b
        Content-Type: message/delivery-status

        Reporting-MTA: dns; mx.example.net

        Final-Recipient: rfc822; nobody@example.org
        Action: failed
        Status: 5.1.1
        --dsn-b--
        """),
    None,
)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, (eml, exp) in SAMPLES.items():
        (OUT / f"{name}.eml").write_bytes(eml.encode("utf-8"))
        (OUT / f"{name}.json").write_text(json.dumps(exp, indent=2, ensure_ascii=False) + "\n")
    print(len(SAMPLES), "samples")


main()
