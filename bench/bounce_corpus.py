"""How bench/bounces.py --corpus measures the classifier against sisimai's public corpus."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import compat32
from pathlib import Path

from flufl.bounce import all_failures
from sisimai_expectations import NOT_FAILURES, Sample, load_samples

from mailproxy_models.bounce_reasons import REASONS
from mailproxy_workers.inbound.classify import classify

_USABLE = re.compile(r"^[^\s@|/\\<>]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")
_SISIMAI_NAME = {reason.value: rule.sisimai for reason, rule in REASONS.items()}


@dataclass(frozen=True)
class Reading:
    """What one reader made of one sample."""

    bounce: bool
    recipients: tuple[str, ...] = ()
    hard: tuple[bool, ...] = ()
    reasons: tuple[str, ...] = ()
    crashed: bool = False
    diagnostics: tuple[str, ...] = ()


@dataclass
class Tally:
    failures: int = 0
    failure_rows: int = 0
    not_failures: int = 0
    recognised: int = 0
    recipients: int = 0
    hard: int = 0
    reasons: int = 0
    false_bounces: int = 0
    wrongly_hard: int = 0  # soft failures called hard: a working address suppressed
    crashes: int = 0
    misses: list[str] = field(default_factory=list)
    # (expected reason, our reason) of rows that disagree: the largest groups first
    pairs: Counter[tuple[str, str]] = field(default_factory=Counter)


def ours(raw: bytes) -> Reading:
    try:
        facts = classify(raw)
    except Exception:  # noqa: BLE001 - counted, never hidden
        return Reading(False, crashed=True)
    bounces = [e for e in facts.events if e.kind == "bounce"]
    return Reading(
        bool(bounces),
        tuple(r for e in bounces for r in e.recipients),
        tuple(e.hard_bounce for e in bounces),
        tuple(_SISIMAI_NAME.get(str(e.details.get("reason")), "?") for e in bounces),
        crashed=facts.kind == "unparseable",
        diagnostics=tuple(
            f"[{e.details.get('format')}] {e.enhanced_status} {e.description}" for e in bounces
        ),
    )


def flufl(raw: bytes) -> Reading:
    try:
        temporary, permanent = all_failures(message_from_bytes(raw, policy=compat32))
    except Exception:  # noqa: BLE001 - flufl.bounce raising on a sample is its crash
        return Reading(False, crashed=True)
    addresses = [a.decode("utf-8", "replace").lower() for a in (*permanent, *temporary)]
    hard = (True,) * len(permanent) + (False,) * len(temporary)
    return Reading(bool(addresses), tuple(addresses), hard)


_SHOWN_TEXT = 240


def _unmatched_pairs(rows: list, reading: Reading) -> list[tuple[str, str]]:
    """Expected and found reasons left over once the agreeing ones are taken out."""
    want = Counter(row.reason for row in rows) - Counter(reading.reasons)
    got = Counter(reading.reasons) - Counter(row.reason for row in rows)
    missing = list(want.elements())
    extra = list(got.elements())
    extra += ["(none)"] * max(0, len(missing) - len(extra))
    return list(zip(missing, extra, strict=False))


def _agreement(expected: list, found: tuple) -> int:
    return sum((Counter(expected) & Counter(found)).values())


def _score(tally: Tally, sample: Sample, raw: bytes, reading: Reading) -> None:
    tally.crashes += reading.crashed
    if not sample.is_failure:
        tally.not_failures += 1
        tally.false_bounces += reading.bounce
        if reading.bounce:
            tally.misses.append(f"{sample.path.name}: false bounce {reading.recipients}")
        return
    rows = [row for row in sample.rows if row.reason not in NOT_FAILURES]
    tally.failures += 1
    tally.failure_rows += len(rows)
    tally.recognised += reading.bounce
    text = raw.decode("utf-8", "replace").lower()
    usable = all(_USABLE.match(r) and r.lower() in text for r in reading.recipients)
    recipients_agree = usable and len(reading.recipients) == len(rows)
    tally.recipients += recipients_agree
    hard = _agreement([row.hard for row in rows], reading.hard)
    reasons = _agreement([row.reason for row in rows], reading.reasons)
    tally.hard += hard
    tally.wrongly_hard += max(0, sum(reading.hard) - sum(row.hard for row in rows))
    tally.reasons += reasons
    if not recipients_agree or hard < len(rows) or reasons < len(rows):
        want = [(row.status, row.reply_code, row.reason, row.hard) for row in rows]
        got = list(zip(reading.recipients, reading.reasons, reading.hard, strict=False))
        said = " | ".join(d[:_SHOWN_TEXT] for d in reading.diagnostics)
        tally.misses.append(f"{sample.path.name}: want {want} got {got}\n      said: {said}")
        for pair in _unmatched_pairs(rows, reading):
            tally.pairs[pair] += 1


def _same_elsewhere(corpus: Path, samples: list[Sample]) -> tuple[int, int]:
    """Samples whose CR-only and CRLF copies read like the LF one: (same, compared)."""
    same = compared = 0
    for sample in samples:
        for folder in ("mac", "dos"):
            copy = corpus / "set-of-emails" / "maildir" / folder / sample.path.name
            if copy.is_file():
                compared += 1
                lf = ours(sample.path.read_bytes())
                other = ours(copy.read_bytes())
                same += (lf.recipients, lf.reasons, lf.hard) == (
                    other.recipients,
                    other.reasons,
                    other.hard,
                )
    return same, compared


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def corpus_agreement(corpus: Path, show_misses: bool) -> None:
    samples = load_samples(
        corpus / "rb-sisimai" / "test" / "public", corpus / "set-of-emails" / "maildir" / "bsd"
    )
    mine, theirs = Tally(), Tally()
    for sample in samples:
        raw = sample.path.read_bytes()
        _score(mine, sample, raw, ours(raw))
        _score(theirs, sample, raw, flufl(raw))
    same, compared = _same_elsewhere(corpus, samples)
    soft_rows = sum(
        not row.hard
        for s in samples
        if s.is_failure
        for row in s.rows
        if row.reason not in NOT_FAILURES
    )
    print(
        f"sisimai corpus: {mine.failures} failure samples ({mine.failure_rows} recipient rows), "
        f"{mine.not_failures} delivered/vacation/feedback samples"
    )
    print("| on that corpus | mailproxy | flufl.bounce | goal |")
    print("|---|---|---|---|")
    rows = [
        ("failure samples recognised as bounces", "recognised", "failures", ">= 98%"),
        ("recipient set agrees", "recipients", "failures", ">= 97%"),
        ("hard/soft agrees with the hard-bounce flag", "hard", "failure_rows", ">= 95%"),
        ("reason agrees", "reasons", "failure_rows", ">= 90%"),
    ]
    for label, name, whole, goal in rows:
        a = _percent(getattr(mine, name), getattr(mine, whole))
        b = _percent(getattr(theirs, name), getattr(theirs, whole))
        if name == "reasons":
            b = "-"
        print(f"| {label} | {a} | {b} | {goal} |")
    print(
        f"| not-a-bounce samples taken as bounces | {mine.false_bounces} of {mine.not_failures} "
        f"| {theirs.false_bounces} of {theirs.not_failures} | 0 |"
    )
    print(
        f"| soft failures called hard (rows) | {mine.wrongly_hard} of {soft_rows} "
        f"| {theirs.wrongly_hard} of {soft_rows} | - |"
    )
    print(f"| crashes | {mine.crashes} | {theirs.crashes} | 0 |")
    print(f"| CR / CRLF copies read like the LF one | {same} of {compared} | - | all |")
    if show_misses:
        print("\nmailproxy disagrees on:")
        for miss in mine.misses:
            print("  " + miss)
        print("\nreason disagreements (expected -> ours), largest groups first:")
        for (want, got), count in mine.pairs.most_common():
            print(f"  {count:4d}  {want} -> {got}")
