"""A local instance's record names its process by pid and start time: after a crash, a pid
taken by another program is not the instance, and ``mail-proxy stop`` never signals it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mailproxy_api.cli_instances import process_start

MAIL_PROXY = str(Path(sys.executable).with_name("mail-proxy"))


def _mail_proxy(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILPROXY_")}
    env.update(MAILPROXY_HOME=str(home), COLUMNS="200")
    return subprocess.run([MAIL_PROXY, *args], env=env, capture_output=True, text=True, timeout=60)


def test_stop_leaves_alone_a_process_that_took_a_crashed_instances_pid(tmp_path):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        started = process_start(stranger.pid)
        assert started is not None  # Linux: /proc is there
        instance = tmp_path / "crashed"
        instance.mkdir()
        record = {
            "name": "crashed",
            "pid": stranger.pid,  # the crashed instance's pid, now the stranger's
            "pid_start": started - 1,
            "worker_pid": stranger.pid,
            "worker_pid_start": started - 1,
            "url": "http://127.0.0.1:9",
        }
        (instance / "instance.json").write_text(json.dumps(record))
        stopped = _mail_proxy(tmp_path, "stop", "crashed")
        assert stopped.returncode == 0 and "is not running" in stopped.stdout, stopped.stderr
        listed = json.loads(_mail_proxy(tmp_path, "list", "--json").stdout)
        assert [(i["name"], i["state"], i["pid"]) for i in listed] == [("crashed", "stopped", None)]
        assert stranger.poll() is None  # still running, never signalled

        # The same record with the right start time is the process: stop signals it.
        (instance / "instance.json").write_text(json.dumps({**record, "pid_start": started}))
        assert _mail_proxy(tmp_path, "stop", "crashed").returncode == 0
        assert stranger.wait(timeout=10) != 0
    finally:
        stranger.kill()
        stranger.wait()
