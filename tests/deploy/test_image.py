"""deploy/Dockerfile, checked without a container engine.

hadolint lints it; its stages and user are parsed; and what its build stage does is done
here: a wheel is built from exactly the files the Dockerfile copies, installed into a fresh
virtualenv laid out like the image's, and every entry point the image, the compose file and
the chart name is run from there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import requests

from tests.deploy.conftest import DEPLOY, ROOT, TOOLS_VENV
from tests.support.servers import free_port, wait_port
from tests.support.smtp_sink import SMTPSink

DOCKERFILE = DEPLOY / "Dockerfile"
IMAGE_VENV = "/opt/mailproxy"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def stages() -> list[list[tuple[str, str]]]:
    split: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            split.append([])
        if split:
            split[-1].append((keyword, rest))
    return split


def copies(stage: list[tuple[str, str]]) -> list[tuple[list[str], str]]:
    found = []
    for keyword, rest in stage:
        if keyword == "COPY" and "--from=" not in rest:
            *sources, destination = rest.split()
            found.append((sources, destination))
    return found


def test_hadolint_finds_nothing():
    hadolint = TOOLS_VENV / "bin" / "hadolint"
    if not hadolint.exists():
        pytest.fail(f"{hadolint} is missing: bash tests/run.sh installs the deployment tools")
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_is_multi_stage_and_runtime_gets_only_the_virtualenv():
    build, runtime = stages()
    assert build[0][1].endswith(" AS build")
    assert ("COPY", f"--from=build {IMAGE_VENV} {IMAGE_VENV}") in runtime
    # No sources of the packages in the runtime stage: only the installed virtualenv.
    runtime_sources = {s for sources, _ in copies(runtime) for s in sources}
    assert not runtime_sources & {"mailproxy_api/", "mailproxy_models/", "mailproxy_workers/"}


def test_runtime_runs_as_a_non_root_user_it_creates():
    *_, runtime = stages()
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000
    assert any(
        keyword == "RUN" and "useradd" in rest and "${UID}" in rest for keyword, rest in runtime
    )
    assert ("ARG", f"UID={uid}") in runtime


def test_the_wheel_carries_the_migrations(image_like_venv):
    wheel = image_like_venv / (image_like_venv / "wheel-name").read_text()
    names = zipfile.ZipFile(wheel).namelist()
    assert "migrations/env.py" in names and "migrations/script.py.mako" in names
    assert any(n.startswith("migrations/versions/0001_") for n in names)


def default_command() -> list[str]:
    *_, runtime = stages()
    (cmd,) = [json.loads(rest) for keyword, rest in runtime if keyword == "CMD"]
    return list(cmd)


def image_env() -> dict[str, str]:
    """The runtime stage's ENV (KEY=value pairs, continuation lines joined)."""
    *_, runtime = stages()
    found: dict[str, str] = {}
    for keyword, rest in runtime:
        if keyword == "ENV":
            for pair in rest.split():
                key, _, value = pair.partition("=")
                found[key] = value
    return found


def test_default_command_is_the_embedded_instance_with_its_data_in_the_volume():
    assert default_command() == ["mail-proxy", "start"]
    *_, runtime = stages()
    assert ("VOLUME", '["/data"]') in runtime
    assert image_env()["MAILPROXY_DATA_DIR"] == "/data"
    # The volume's directory belongs to the image's user (a new named volume copies it).
    assert any(k == "RUN" and "install -d -o mailproxy" in r and "/data" in r for k, r in runtime)


def test_both_stages_install_with_the_pinned_constraints():
    build, _runtime = stages()
    assert (["constraints.txt"], "./") in copies(build)
    (install,) = [r for k, r in build if k == "RUN" and "pip install" in r]
    assert "--constraint constraints.txt" in install
    pins = {
        line.split("==")[0].lower()
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    # Every package the image installs for its extras is pinned.
    assert {"flask", "celery", "sqlalchemy", "gunicorn", "psycopg2-binary", "redis"} <= pins
    run_sh = (ROOT / "tests" / "run.sh").read_text()
    assert "pip install -q -c constraints.txt -e '.[test]'" in run_sh


@pytest.fixture(scope="module")
def image_like_venv(tmp_path_factory) -> Path:
    """A fresh virtualenv holding the wheel built as the Dockerfile builds it."""
    base = tmp_path_factory.mktemp("image")
    build, runtime = stages()
    context = base / "context"
    for sources, _ in copies(build):
        for source in sources:
            origin = ROOT / source.rstrip("/")
            if origin.is_dir():
                shutil.copytree(
                    origin, context / origin.name, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                context.mkdir(exist_ok=True)
                shutil.copy2(origin, context / origin.name)
    wheels = base / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(wheels), "."],
        cwd=context,
        check=True,
        timeout=300,
    )
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (wheel,) = wheels.glob("mailproxy-*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    purelib = Path(
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import sysconfig; print(sysconfig.get_path('purelib'))",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # The dependencies come from the project's own environment, added as a plain path entry:
    # its .pth files (among them the editable install of this checkout) are not processed,
    # so mailproxy itself can only come from the wheel.
    (purelib / "_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # What the runtime stage copies into the virtualenv besides the wheel (the migrations).
    for sources, destination in copies(runtime):
        assert destination.startswith(IMAGE_VENV + "/"), destination
        target = venv / destination.removeprefix(IMAGE_VENV + "/")
        for source in sources:
            shutil.copytree(ROOT / source.rstrip("/"), target, dirs_exist_ok=True)
    (venv / "wheel-name").write_text(wheel.name)
    shutil.copy2(wheel, venv / wheel.name)
    return venv


def run_in(venv: Path, tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "PYTHON"))}
    env.update(
        MAILPROXY_DATA_DIR=str(tmp_path / "data"),
        MAILPROXY_DATABASE_URL=f"sqlite:///{tmp_path / 'mailproxy.sqlite'}",
        MAILPROXY_BROKER_URL=f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}",
        PATH=f"{venv / 'bin'}:{env['PATH']}",
    )
    return subprocess.run(
        list(command), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_wheel_declares_the_console_script_and_the_extras_the_image_installs(image_like_venv):
    wheel = image_like_venv / (image_like_venv / "wheel-name").read_text()
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
        metadata = archive.read(f"{dist_info}/METADATA").decode()
    assert "mail-proxy = mailproxy_api.cli:main" in entry_points
    for module in (
        "mailproxy_api/wsgi.py",
        "mailproxy_workers/__init__.py",
        "mailproxy_models/migrate.py",
    ):
        assert module in names
    requirements = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for extra, package in (("server", "gunicorn"), ("postgres", "psycopg2"), ("redis", "redis")):
        assert any(package in r and f'extra == "{extra}"' in r for r in requirements), extra
    assert any(r.startswith("Requires-Dist: celery") for r in requirements)


def test_mail_proxy_console_script_runs_from_the_wheel(image_like_venv, tmp_path):
    result = run_in(
        image_like_venv, tmp_path, str(image_like_venv / "bin" / "mail-proxy"), "--help"
    )
    assert result.returncode == 0, result.stderr
    assert "db" in result.stdout and "start" in result.stdout


def test_package_comes_from_the_wheel_not_the_checkout(image_like_venv, tmp_path):
    result = run_in(
        image_like_venv,
        tmp_path,
        str(image_like_venv / "bin" / "python"),
        "-c",
        "import mailproxy_api, mailproxy_models.migrate as m;"
        "print(mailproxy_api.__file__); print(m.MIGRATIONS_DIR)",
    )
    assert result.returncode == 0, result.stderr
    package_file, migrations_dir = result.stdout.split()
    assert package_file.startswith(str(image_like_venv))
    assert Path(migrations_dir, "env.py").exists()


def test_celery_worker_and_beat_commands_load_the_app(image_like_venv, tmp_path):
    python = str(image_like_venv / "bin" / "python")
    for command in ("worker", "beat"):
        # The subcommand's --help is parsed after -A has loaded the app, so an app that does
        # not import fails here.
        result = run_in(
            image_like_venv,
            tmp_path,
            python,
            "-m",
            "celery",
            "-A",
            "mailproxy_workers",
            command,
            "--help",
        )
        assert result.returncode == 0, result.stderr
    queues = run_in(
        image_like_venv,
        tmp_path,
        python,
        "-c",
        "from mailproxy_workers import app;"
        "print(','.join(sorted(q.name for q in app.conf.task_queues)))",
    )
    assert queues.stdout.strip() == "mail.high,mail.immediate,mail.low,mail.maintenance,mail.medium"


def test_gunicorn_loads_the_wsgi_app(image_like_venv, tmp_path):
    result = run_in(
        image_like_venv,
        tmp_path,
        str(image_like_venv / "bin" / "python"),
        "-c",
        "from gunicorn.util import import_app; app = import_app('mailproxy_api.wsgi:app');"
        "print(app.test_client().get('/health').get_json())",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "{'ok': True}"


def test_migrations_run_from_the_image_layout(image_like_venv, tmp_path):
    mail_proxy = str(image_like_venv / "bin" / "mail-proxy")
    first = run_in(image_like_venv, tmp_path, mail_proxy, "db", "upgrade")
    assert first.returncode == 0, first.stdout + first.stderr
    again = run_in(image_like_venv, tmp_path, mail_proxy, "db", "upgrade")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "mailproxy.sqlite").stat().st_size > 0


def test_default_command_serves_delivers_and_stops_cleanly_on_sigterm(image_like_venv, tmp_path):
    """What `docker run -p 8000:8000 -v mailproxy:/data IMAGE` runs, from the image's venv,
    with the image's environment (the volume and port moved to this test's own)."""
    sink = SMTPSink()
    sink.start()
    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILPROXY_", "PYTHON"))}
    env.update(image_env())
    env.update(
        MAILPROXY_DATA_DIR=str(data),
        MAILPROXY_HOST="127.0.0.1",
        MAILPROXY_PORT=str(port),
        PATH=f"{image_like_venv / 'bin'}:{os.environ['PATH']}",
    )
    log = open(tmp_path / "container.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        default_command(),
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_port(port, timeout=60, proc=proc)
        base = f"http://127.0.0.1:{port}"
        admin = {"X-API-Token": (data / "admin_token").read_text().strip()}
        tenant = requests.post(f"{base}/tenant", json={"id": "acme"}, headers=admin, timeout=10)
        assert tenant.status_code == 200, tenant.text
        key = {"X-API-Token": tenant.json()["api_key"]}
        account = {"id": "main", "host": "127.0.0.1", "port": sink.port, "use_tls": False}
        assert requests.post(f"{base}/account", json=account, headers=key, timeout=10).ok
        message = {
            "id": "m1",
            "from": "shop@example.com",
            "to": ["a@example.org"],
            "subject": "From the container",
            "body": "Hello",
        }
        added = requests.post(
            f"{base}/commands/add-messages", json={"messages": [message]}, headers=key, timeout=10
        )
        assert added.json()["queued"] == 1, added.text
        [received] = sink.wait_for(1, timeout=60)
        assert received.message()["Subject"] == "From the container"
        assert (data / "mailproxy.sqlite").exists()  # the database lives in the volume
        proc.send_signal(signal.SIGTERM)  # docker stop
        assert proc.wait(timeout=60) == 0
        output = (tmp_path / "container.log").read_text()
        assert "stopped." in output and "Traceback" not in output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        sink.stop()
