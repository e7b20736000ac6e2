"""The SMTP server of the soak, in its own process: answers by recipient, logs each 250.

    python bench/soak_sink.py PORT LOG_FILE [--delay SECONDS]

Recipients ``reject-*`` get ``550`` at RCPT; ``tempfail-*`` get ``451`` the first time this
process sees them, then ``250``; everything else ``250``. Each DATA answered 250 appends a
line ``SOAK_ID<TAB>MESSAGE_ID<TAB>RECIPIENTS`` to LOG_FILE (flushed before the reply). With
``--delay`` every DATA waits that long first (the slow server). Stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import threading
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.controller import Controller


class SoakHandler:
    def __init__(self, log_path: str, delay: float) -> None:
        self.log = open(log_path, "a", buffering=1)  # noqa: SIM115 - kept for the process life
        self.delay = delay
        self.refused_once: set[str] = set()

    async def handle_RCPT(
        self,
        server: Any,
        session: Any,
        envelope: Any,
        address: str,  # noqa: N802
        rcpt_options: Any,
    ) -> str:
        local = address.split("@", 1)[0].lower()
        if local.startswith("reject"):
            return "550 5.1.1 No such user"
        if local.startswith("tempfail") and address not in self.refused_once:
            self.refused_once.add(address)
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.delay:
            await asyncio.sleep(self.delay)
        headers = BytesHeaderParser().parsebytes(envelope.original_content or envelope.content)
        soak_id = str(headers.get("X-Soak-Id", "")).strip()
        message_id = str(headers.get("Message-ID", "")).strip()
        self.log.write(f"{soak_id}\t{message_id}\t{','.join(envelope.rcpt_tos)}\n")
        self.log.flush()
        return "250 OK: queued"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("log")
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    handler = SoakHandler(args.log, args.delay)
    controller = Controller(handler, hostname="127.0.0.1", port=args.port, ready_timeout=10)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print("READY", flush=True)
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
