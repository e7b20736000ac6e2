"""Redis broker channels that close cleanly after Redis went away.

When Redis restarts while a worker has a task running (acks late: its message is still
unacknowledged) and another ``BRPOP`` pending, kombu's ``Channel.close()`` first reads the
pending ``BRPOP`` reply. On a dead connection that read raises, so the close stops half-way:
the channel is not marked closed and its unacknowledged messages are not restored. Celery
then detaches the transport from the connection and closes it again; that second close
rebuilds a connection pool from the detached transport and fails with ``AttributeError:
'NoneType' object has no attribute 'hostname'``, which Celery treats as unrecoverable: the
worker process exits instead of reconnecting.

These channels give up on the pending reply when the connection is gone (it can never come)
and go on closing, so the second close finds the channel closed and the worker reconnects.
Nothing is lost either way: Redis only carries wake-ups, the database row is the truth.
"""

from __future__ import annotations

from queue import Empty
from typing import TYPE_CHECKING, Any

from kombu.transport import redis as kombu_redis


class _ClosesAfterConnectionLoss:
    """Mixed into kombu's Redis channels (before them in the MRO)."""

    # Annotations only: the values and _brpop_read come from kombu's channel.
    _in_poll: Any
    closed: bool
    connection_errors: tuple[type[BaseException], ...]
    if TYPE_CHECKING:

        def _brpop_read(self, **options: Any) -> Any: ...

    def close(self) -> None:
        if self._in_poll and not self.closed:
            try:
                self._brpop_read()  # clears _in_poll whether it succeeds or not
            except Empty:
                pass
            except self.connection_errors:
                pass  # the broker is gone, the reply with it: close the rest anyway
        super().close()  # type: ignore[misc]


class RedisChannel(_ClosesAfterConnectionLoss, kombu_redis.Channel):
    pass


class SentinelChannel(_ClosesAfterConnectionLoss, kombu_redis.SentinelChannel):
    pass


def use_channels_that_survive_restarts() -> None:
    """Make kombu's Redis transports (redis://, rediss://, sentinel://) open these channels.

    kombu picks a transport class from the URL scheme, so the channel class can only be set
    on the transport class; doing it twice is harmless."""
    kombu_redis.Transport.Channel = RedisChannel
    kombu_redis.SentinelTransport.Channel = SentinelChannel
