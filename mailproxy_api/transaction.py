"""One database transaction per request, committed at the edge; wake-ups only after commit."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask, current_app, g
from flask.wrappers import Response
from sqlalchemy.orm import Session

from mailproxy_models.instance import Instance


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
