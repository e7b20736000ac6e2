"""An SMTP server for benchmarks, in its own process: accepts everything, counts, keeps nothing.

    python bench/counting_sink.py PORT COUNT_FILE

Writes the number of accepted messages to COUNT_FILE every 50 ms; stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller


class CountingHandler:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, N802 - aiosmtpd API
        self.count += 1
        return "250 OK: counted"


def main() -> None:
    port, count_file = int(sys.argv[1]), Path(sys.argv[2])
    handler = CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=10)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("READY", flush=True)
    while not stop.is_set():
        count_file.write_text(str(handler.count))
        time.sleep(0.05)
    count_file.write_text(str(handler.count))
    controller.stop()


if __name__ == "__main__":
    main()
