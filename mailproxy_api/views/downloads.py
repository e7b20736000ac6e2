"""Downloads of attachments offloaded to the ``local`` storage: signed, expiring links.

No token: the link itself is the credential. The signature covers the file key and the
expiry, so a link cannot be extended or pointed at another file; keys have one fixed shape
and are resolved inside the storage directory, so no path can leave it.
"""

from __future__ import annotations

from flask import abort, current_app, send_file
from flask.wrappers import Response
from marshmallow import fields, validate

from mailproxy_models.download_links import check_link, link_secret, stored_path

from ..request_json import Blueprint
from ..schemas import MAX_UNIX_SECONDS, TEXT_PATTERN, Pattern, QueryInt, StrictSchema

blp = Blueprint("downloads", __name__, description="Downloads of offloaded attachments")


class DownloadQuerySchema(StrictSchema):
    expires = QueryInt(0, MAX_UNIX_SECONDS, required=True, metadata={"description": "Unix seconds"})
    signature = fields.String(
        required=True,
        # No NUL, like every text the API takes (refused with a 400 before any view).
        validate=[validate.Length(min=1, max=128), Pattern(TEXT_PATTERN)],
        metadata={"description": "HMAC-SHA256, hex"},
    )


@blp.route("/files/<path:key>", methods=["GET"])
@blp.arguments(DownloadQuerySchema, location="query")
@blp.response(200, description="The file's bytes")
@blp.alt_response(403, description="Signature not valid, or the link has expired")
@blp.alt_response(404, description="No such file")
@blp.doc(security=[])
def download(query: dict[str, int | str], key: str) -> Response:
    """Download an offloaded attachment through the link sent in the email."""
    settings = current_app.extensions["mailproxy"].settings
    problem = check_link(link_secret(settings), key, int(query["expires"]), str(query["signature"]))
    if problem == "unknown file":
        abort(404, description="No such file.")
    if problem:
        abort(403, description=f"Download refused: {problem}.")
    path = stored_path(settings.effective_offload_local_dir, key)
    if path is None or not path.is_file():
        abort(404, description="No such file: it may have been removed after its expiry.")
    return send_file(path, as_attachment=True, download_name=path.name, conditional=True)
