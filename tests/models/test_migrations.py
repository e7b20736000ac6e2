"""Alembic migrations on SQLite and PostgreSQL: up, down, up again; models agree with them;
a failing migration leaves nothing behind; concurrent upgrades; SQL written offline."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from mailproxy_models.db import Base, make_engine
from mailproxy_models.migrate import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    downgrade,
    pending_differences,
    upgrade,
)

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
REPO = Path(__file__).resolve().parents[2]


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _columns(url: str, table: str) -> set[str]:
    engine = make_engine(url)
    try:
        return {column["name"] for column in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> object:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            return conn.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


def _execute(url: str, sql: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def _with_next_revision(url: str, versions: Path, upgrade_body: str) -> Config:
    """The real env.py and revisions, plus one more after head running ``upgrade_body``."""
    versions.mkdir()
    for revision in (MIGRATIONS_DIR / "versions").glob("*.py"):
        shutil.copy(revision, versions)
    (versions / "9999_test.py").write_text(
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        f"revision = '9999_test'\ndown_revision = '{HEAD}'\n"
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade():\n" + textwrap.indent(textwrap.dedent(upgrade_body), "    ") + "\n\n"
        "def downgrade():\n    pass\n"
    )
    config = alembic_config(url)
    config.set_main_option("version_locations", str(versions))
    return config


def _seed_message_with_event(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO tenants (id, client_sync_path, client_attachment_path, active,"
                    " created_at, updated_at) VALUES ('t1', '/s', '/a', :true, 0, 0)"
                ),
                {"true": True},
            )
            conn.exec_driver_sql(
                "INSERT INTO messages (tenant_id, id, account_id, priority, status, payload,"
                " created_at, due_at, attempts) VALUES ('t1', 'm1', 'a1', 2, 'pending', '{}',"
                " 0, 0, 0)"
            )
            conn.exec_driver_sql(
                "INSERT INTO message_events (message_pk, ts, kind)"
                " SELECT pk, 0, 'sent' FROM messages WHERE id = 'm1'"
            )
    finally:
        engine.dispose()


def test_upgrade_creates_every_table_downgrade_removes_them_and_upgrade_works_again(
    database_url,
):
    upgrade(database_url)
    assert _tables(database_url) == set(Base.metadata.tables)
    assert current_revision(database_url) == HEAD

    downgrade(database_url, "base")
    assert _tables(database_url) == set()
    assert current_revision(database_url) is None

    upgrade(database_url)
    assert _tables(database_url) == set(Base.metadata.tables)
    assert current_revision(database_url) == HEAD


def test_upgrade_at_head_again_changes_nothing(database_url):
    upgrade(database_url)
    upgrade(database_url)
    assert current_revision(database_url) == HEAD
    assert pending_differences(database_url) == []


def test_models_and_migrations_agree_after_upgrade_to_head(database_url):
    upgrade(database_url)
    assert pending_differences(database_url) == []


def test_migrate_alone_knows_every_table_the_models_declare():
    # A fresh process: pending_differences must not depend on what the caller imported.
    script = (
        "import importlib, pkgutil\n"
        "import mailproxy_models\n"
        "from mailproxy_models import migrate\n"
        "from mailproxy_models.db import Base\n"
        "known = set(Base.metadata.tables)\n"
        "for module in pkgutil.iter_modules(mailproxy_models.__path__):\n"
        "    importlib.import_module(f'mailproxy_models.{module.name}')\n"
        "print(sorted(set(Base.metadata.tables) - known))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", "add the module to mailproxy_models/tables.py"


def _extra_column(md: sa.MetaData) -> None:
    sa.Table("messages", md, sa.Column("surprise", sa.Integer), extend_existing=True)


def _wider_column(md: sa.MetaData) -> None:
    md.tables["messages"].c.status.type = sa.String(32)


def _nullable_made_required(md: sa.MetaData) -> None:
    md.tables["messages"].c.batch_code.nullable = False


def _index_dropped(md: sa.MetaData) -> None:
    table = md.tables["messages"]
    table.indexes.remove(next(ix for ix in table.indexes if ix.name == "ix_messages_claim"))


def _cascade_dropped(md: sa.MetaData) -> None:
    (fk,) = md.tables["message_events"].foreign_key_constraints
    fk.ondelete = None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_extra_column, ["add_column"]),
        (_wider_column, ["modify_type"]),
        (_nullable_made_required, ["modify_nullable"]),
        (_index_dropped, ["remove_index"]),
        (_cascade_dropped, ["remove_fk", "add_fk"]),
    ],
    ids=["extra-column", "wider-type", "nullable", "index", "fk-ondelete"],
)
def test_a_model_change_without_a_migration_is_detected(
    database_url, change: Callable[[sa.MetaData], None], expected: list[str]
):
    upgrade(database_url)
    drifted = sa.MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    change(drifted)

    differences = pending_differences(database_url, drifted)

    # Column changes come wrapped in a list (one per table), the others as plain tuples.
    kinds = [d[0][0] if isinstance(d, list) else d[0] for d in differences]
    assert kinds == expected


FAILING_HALFWAY = """
op.create_table("scratch", sa.Column("x", sa.Integer, primary_key=True))
op.add_column("messages", sa.Column("scratch", sa.Integer))
op.create_index("ix_tenants_name", "tenants", ["name"])
raise RuntimeError("migration failed halfway")
"""


@pytest.mark.parametrize("start", [None, HEAD], ids=["from-empty", "from-0001"])
def test_a_failing_migration_leaves_the_database_as_it_was(database_url, tmp_path, start):
    config = _with_next_revision(database_url, tmp_path / "versions", FAILING_HALFWAY)
    if start is not None:
        command.upgrade(config, start)

    with pytest.raises(RuntimeError, match="failed halfway"):
        command.upgrade(config, "head")

    # One transaction for the whole upgrade, DDL included (SQLite: BEGIN IMMEDIATE).
    assert current_revision(database_url) == start
    if start is None:
        assert _tables(database_url) == set()
    else:
        assert _tables(database_url) == set(Base.metadata.tables)
        assert "scratch" not in _columns(database_url, "messages")
        assert pending_differences(database_url) == []


def test_a_table_rebuild_keeps_the_rows_that_reference_the_table(database_url, tmp_path):
    # On SQLite a type change rebuilds the table (copy, drop, rename); with foreign keys on,
    # the drop would cascade-delete every event of every message.
    config = _with_next_revision(
        database_url,
        tmp_path / "versions",
        """
        with op.batch_alter_table("messages") as batch_op:
            batch_op.alter_column(
                "smtp_message_id", existing_type=sa.String(998), type_=sa.String(1000)
            )
        """,
    )
    command.upgrade(config, HEAD)
    _seed_message_with_event(database_url)

    command.upgrade(config, "head")

    assert current_revision(database_url) == "9999_test"
    assert _scalar(database_url, "SELECT count(*) FROM message_events") == 1
    # The foreign key survived the rebuild and is enforced again: deletes still cascade.
    _execute(database_url, "DELETE FROM tenants")
    assert _scalar(database_url, "SELECT count(*) FROM message_events") == 0


def test_a_migration_that_breaks_a_foreign_key_is_rolled_back(database_url, tmp_path):
    config = _with_next_revision(
        database_url,
        tmp_path / "versions",
        """
        op.execute(
            "INSERT INTO message_events (message_pk, ts, kind) VALUES (999999, 0, 'sent')"
        )
        """,
    )
    command.upgrade(config, HEAD)

    # PostgreSQL refuses the row at once; SQLite (foreign keys off while migrating) at the
    # check before commit.
    with pytest.raises((sa.exc.IntegrityError, RuntimeError)):
        command.upgrade(config, "head")

    assert current_revision(database_url) == HEAD
    assert _scalar(database_url, "SELECT count(*) FROM message_events") == 0


def test_several_processes_upgrading_at_once_all_succeed(database_url):
    # The database exists beforehand (for SQLite: a file already in WAL mode). Switching a
    # new file to WAL from several processes at once can fail with "database is locked" in
    # make_engine's connect hook, a race of its own, not the migrations'.
    assert current_revision(database_url) is None
    # Each process imports first, says so, then waits for the word: the upgrades overlap.
    script = (
        "import sys\n"
        "from mailproxy_models.migrate import upgrade\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "upgrade(sys.argv[1])\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, database_url],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]

    assert [proc.returncode for proc in procs] == [0] * 4, "\n".join(outputs)
    assert current_revision(database_url) == HEAD
    assert pending_differences(database_url) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///never-opened.sqlite", "pk INTEGER NOT NULL"),
        ("postgresql+psycopg2://nobody@unreachable.invalid/db", "pk BIGSERIAL NOT NULL"),
    ],
    ids=["sqlite", "postgres"],
)
def test_offline_mode_writes_the_sql_without_connecting(url, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = alembic_config(url)
    config.output_buffer = io.StringIO()

    command.upgrade(config, "head", sql=True)

    sql = config.output_buffer.getvalue()
    assert "CREATE TABLE messages" in sql
    assert expected in sql
    assert f"SET version_num='{HEAD}'" in sql or f"VALUES ('{HEAD}')" in sql
    assert not (tmp_path / "never-opened.sqlite").exists()
