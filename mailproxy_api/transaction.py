"""One database transaction per request, committed at the edge; wake-ups only after commit."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask import Flask, current_app, g
from flask.wrappers import Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from mailproxy_models.instance import Instance

from .errors import DATABASE_DOWN, error_response

log = logging.getLogger(__name__)


def db_session() -> Session:
    if "db_session" not in g:
        instance: Instance = current_app.extensions["mailproxy"]
        g.db_session = instance.sessions()
    return g.db_session  # type: ignore[no-any-return]


def after_commit(callback: Callable[[], object]) -> None:
    """Run ``callback`` once the request's transaction has committed (e.g. publish a wake-up)."""
    g.setdefault("after_commit", []).append(callback)


def install(app: Flask) -> None:
    @app.after_request
    def _commit(response: Response) -> Response:
        session: Session | None = g.pop("db_session", None)
        if session is None:
            return response
        try:
            if response.status_code < 400:
                session.commit()
            else:
                session.rollback()
        except DBAPIError as exc:
            # After the view, Flask would answer a bare 500. The database (or the connection
            # to it) failed, so the change is not known to be stored: say so, and wake nothing.
            log.error("commit failed: %s", exc.orig)
            session.rollback()
            g.pop("after_commit", None)
            failed, status = error_response(503, DATABASE_DOWN)
            failed.status_code = status
            return failed
        finally:
            session.close()
        if response.status_code < 400:
            for callback in g.pop("after_commit", []):
                callback()
        return response

    @app.teardown_request
    def _discard(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("db_session", None)
        if session is not None:  # an exception skipped after_request
            session.rollback()
            session.close()
