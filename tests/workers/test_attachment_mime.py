"""MIME of fetched attachments: types, inline images by Content-ID, RFC 2231 names, links."""

from __future__ import annotations

import email
import hashlib
from email import policy

from mailproxy_workers.attachments import FetchedAttachment
from mailproxy_workers.composer import DownloadLink, compose


def _payload(**fields):
    payload = {
        "id": "MSG-1",
        "from": "Shop <shop@example.com>",
        "to": ["a@example.org"],
        "subject": "Hello",
        "body": "Body",
        "content_type": "plain",
        "attachments": [],
    }
    payload.update(fields)
    return payload


def _fetched(name: str, data: bytes, mime: str | None = None, cid: str | None = None):
    return FetchedAttachment(
        name, mime, hashlib.md5(data).hexdigest(), len(data), content=data, content_id=cid
    )


def _parse(data: bytes):
    return email.message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)


def test_type_comes_from_the_name_or_is_given_explicitly():
    env = compose(
        _payload(),
        [
            _fetched("a.pdf", b"%PDF"),
            _fetched("b.dat", b"x", "text/csv"),
            _fetched("c.unknownext", b"y"),
        ],
    )
    msg = _parse(env.as_bytes())
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_attachments())
    assert [p.get_content_type() for p in parts] == [
        "application/pdf",
        "text/csv",
        "application/octet-stream",
    ]
    assert [p.get_payload(decode=True) for p in parts] == [b"%PDF", b"x", b"y"]
    assert msg.get_body(("plain",)).get_content().strip() == "Body"


def test_inline_image_referenced_by_cid_goes_in_a_related_part_with_its_content_id():
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    html = '<html><body><p>Logo:</p><img src="cid:logo@shop"></body></html>'
    env = compose(
        _payload(body=html, content_type="html"),
        [_fetched("logo.png", png, cid="logo@shop"), _fetched("terms.pdf", b"%PDF")],
    )
    msg = _parse(env.as_bytes())
    assert msg.get_content_type() == "multipart/mixed"
    related = next(p for p in msg.iter_parts() if p.get_content_type() == "multipart/related")
    html_part, image = list(related.iter_parts())
    assert (
        html_part.get_content_type() == "text/html" and "cid:logo@shop" in html_part.get_content()
    )
    assert image["Content-ID"] == "<logo@shop>" and image.get_content_disposition() == "inline"
    assert image.get_content() == png
    assert [p.get_filename() for p in msg.iter_attachments()] == ["terms.pdf"]


def test_html_referring_to_the_file_name_as_cid_makes_it_inline_too():
    env = compose(
        _payload(body='<img src="cid:chart.png">', content_type="html"),
        [_fetched("chart.png", b"\x89PNG")],
    )
    msg = _parse(env.as_bytes())
    assert msg.get_content_type() == "multipart/related"
    image = list(msg.iter_parts())[1]
    assert image["Content-ID"] == "<chart.png>"


def test_plain_text_bodies_never_inline():
    env = compose(_payload(body="see cid:chart.png"), [_fetched("chart.png", b"\x89PNG")])
    msg = _parse(env.as_bytes())
    assert msg.get_content_type() == "multipart/mixed"
    assert [p.get_filename() for p in msg.iter_attachments()] == ["chart.png"]


def test_non_ascii_and_long_names_use_rfc2231_and_read_back():
    names = ["résumé ✓.pdf", "Überweisungsbestätigung für die Bestellung Nr. 1234 — Kopie.pdf"]
    env = compose(_payload(), [_fetched(name, b"data") for name in names])
    data = env.as_bytes()
    assert data.isascii()
    assert b"filename*=utf-8''r%C3%A9sum%C3%A9" in data
    assert b"filename*0*=utf-8''" in data and b"filename*1*=" in data  # continuations
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    msg = _parse(data)
    assert [p.get_filename() for p in msg.iter_attachments()] == names


def test_download_links_are_added_readably_to_text_and_html_bodies():
    link = DownloadLink("video ✓.mp4", 30 * 1024 * 1024, "https://files.example/v?sig=a&x=1", 0)
    text = _parse(compose(_payload(body="Hello\n"), [], [link]).as_bytes())
    body = text.get_content()
    assert body.startswith("Hello\n\nLarge attachments, available for download until 1970-01-01:")
    assert "- video ✓.mp4 (30.0 MB): https://files.example/v?sig=a&x=1" in body
    html = _parse(
        compose(
            _payload(body="<html><body><p>Hi</p></body></html>", content_type="html"), [], [link]
        ).as_bytes()
    ).get_content()
    assert '<a href="https://files.example/v?sig=a&amp;x=1">video ✓.mp4</a> (30.0 MB)' in html
    assert html.rstrip().endswith("</ul></body></html>")


def test_large_content_is_encoded_in_pieces_never_as_one_copy():
    data = bytes(range(256)) * 40_000  # 10 MB
    env = compose(_payload(), [_fetched("big.bin", data)])
    pieces = list(env.iter_data())
    assert max(len(p) for p in pieces) < 100_000
    assert all(p.endswith(b"\r\n") for p in pieces)
    assert list(_parse(b"".join(pieces)).iter_attachments())[0].get_content() == data


def test_stored_base64_is_written_in_lines_servers_accept():
    """A bug fixed: 0.1 wrote stored base64 as one line, which servers refuse (over 998)."""
    import base64

    encoded = base64.b64encode(bytes(range(256)) * 40).decode()
    env = compose(_payload(attachments=[{"filename": "a.bin", "storage_path": encoded}]))
    assert all(len(line) <= 78 for line in env.data.split(b"\r\n"))
    assert list(_parse(env.data).iter_attachments())[0].get_content() == bytes(range(256)) * 40
