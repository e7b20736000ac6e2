"""The expected results of sisimai's public test suite, read from its Ruby literal tables.

Each ``test/public/<engine>.rb`` of rb-sisimai holds rows like

    '01' => [['5.7.26', '550', 'authfailure', false]],
    '35' => [['5.0.0', '550', 'rejected', false],
             ['4.0.0', '', 'expired', false]],

one row per bounced recipient of sample ``set-of-emails/maildir/bsd/<engine>-01.eml``:
enhanced status, reply code, reason, hard-bounce flag. Only the literals are read; no Ruby
is run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_KEY = re.compile(r"'(\d+)'\s*=>")
# A fifth item (the feedback type of ARF rows) is read past.
_ROW = re.compile(
    r"\[\s*'([^']*)'\s*,\s*'([^']*)'\s*,\s*'([^']*)'\s*,\s*(true|false)\s*(?:,\s*'[^']*'\s*)?\]"
)
# Test tables whose samples were renamed in set-of-emails.
_RENAMED = {"lhost-interscanmss": "lhost-trendmicro", "lhost-mailmarshalsmtp": "lhost-mailmarshal"}
NOT_FAILURES = frozenset({"delivered", "vacation", "feedback"})


@dataclass(frozen=True)
class ExpectedRow:
    status: str
    reply_code: str
    reason: str
    hard: bool


@dataclass(frozen=True)
class Sample:
    path: Path
    rows: tuple[ExpectedRow, ...]

    @property
    def is_failure(self) -> bool:
        return any(row.reason not in NOT_FAILURES for row in self.rows)


def load_samples(sisimai_tests: Path, maildir: Path) -> list[Sample]:
    """Every sample of ``maildir`` that a table of ``sisimai_tests`` has rows for."""
    samples: dict[Path, Sample] = {}
    for table in sorted(sisimai_tests.glob("*.rb")):
        if table.stem.endswith(("-test", "-code")):
            continue
        for index, rows in _rows(table.read_text(encoding="utf-8")).items():
            path = _sample_path(maildir, table.stem, index)
            if path is not None and rows:
                samples[path] = Sample(path, tuple(rows))
    return [samples[path] for path in sorted(samples)]


def _rows(text: str) -> dict[str, list[ExpectedRow]]:
    if "IsExpected" not in text:
        return {}
    tokens = sorted(
        [(m.start(), m.group(1), None) for m in _KEY.finditer(text)]
        + [(m.start(), None, m.groups()) for m in _ROW.finditer(text)],
        key=lambda token: token[0],
    )
    found: dict[str, list[ExpectedRow]] = {}
    key: str | None = None
    for _, index, row in tokens:
        if index is not None:
            key = index
            found.setdefault(key, [])
        elif key is not None and row is not None:
            status, code, reason, hard = row
            found[key].append(ExpectedRow(status, code, reason, hard == "true"))
    return found


def _sample_path(maildir: Path, engine: str, index: str) -> Path | None:
    engine = _RENAMED.get(engine, engine)
    # Some remote-host tables live under lhost- names while their samples are rhost-.
    for prefix in (engine, engine.replace("lhost-", "rhost-", 1)):
        path = maildir / f"{prefix}-{int(index):02d}.eml"
        if path.is_file():
            return path
    return None
