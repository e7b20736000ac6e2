"""Each recipient's own outcome: accepted, refused for now, refused for good.

A message is one SMTP transaction per attempt, but its recipients may be answered
differently: ``451`` at RCPT TO for one, ``250`` for another. Every attempt's answers are
kept per address in ``messages.recipient_outcomes``; the next attempt goes to the
recipients not yet final, in a new transaction of their own. The message is final when
every recipient is: ``sent`` when at least one was accepted, ``error`` when none was.

Pure functions on plain values: the worker, the lifecycle and the API share them.
"""

from __future__ import annotations

from typing import Any

from .addresses import envelope_recipients

# A recipient's status. "deferred": refused for now (4xx, or the attempt failed before the
# server answered for it), tried again on the retry schedule. "refused": for good (5xx, or
# retries spent).
PENDING, ACCEPTED, DEFERRED, REFUSED = "pending", "accepted", "deferred", "refused"
FINAL = frozenset({ACCEPTED, REFUSED})


def recipients_to_try(payload: dict[str, Any], outcomes: dict[str, Any] | None) -> list[str]:
    """Recipients the next attempt goes to: those without a final outcome."""
    outcomes = outcomes or {}
    return [
        address
        for address in envelope_recipients(payload)
        if (outcomes.get(address) or {}).get("status") not in FINAL
    ]


def recipient_outcome(
    status: str,
    smtp_code: int | None = None,
    enhanced_status: str | None = None,
    smtp_text: str | None = None,
) -> dict[str, Any]:
    return {
        "status": status,
        "smtp_code": smtp_code,
        "enhanced_status": enhanced_status,
        "smtp_text": smtp_text,
    }


def status_of_code(code: int) -> str:
    """The recipient status an SMTP reply code means (0: no answer, tried again)."""
    if code in (250, 251):
        return ACCEPTED
    return DEFERRED if code == 0 or 400 <= code < 500 else REFUSED


def merge(
    before: dict[str, Any] | None, attempt: dict[str, dict[str, Any]], ts: float
) -> dict[str, Any]:
    """The outcomes after one attempt: this attempt's answers over the earlier ones, each
    stamped with the time. A final outcome is never replaced (a recipient accepted once is
    never tried again, so a later answer for it can only come from a duplicate)."""
    merged = dict(before or {})
    for address, outcome in attempt.items():
        if (merged.get(address) or {}).get("status") in FINAL:
            continue
        merged[address] = {**outcome, "ts": ts}
    return merged


def overall_kind(outcomes: dict[str, Any]) -> str:
    """What the recipients' outcomes make of the message: "temporary" while any waits for
    another try, else "sent" when at least one was accepted, else "permanent"."""
    statuses = {(o or {}).get("status") for o in outcomes.values()}
    if statuses & {DEFERRED, PENDING}:
        return "temporary"
    return "sent" if ACCEPTED in statuses else "permanent"


def give_up(outcomes: dict[str, Any], reason: str) -> dict[str, Any]:
    """Retries spent: every recipient still waiting is refused for good, with why."""
    return {
        address: (
            {**outcome, "status": REFUSED, "smtp_text": f"{reason}: {outcome.get('smtp_text')}"}
            if outcome.get("status") not in FINAL
            else outcome
        )
        for address, outcome in outcomes.items()
    }


def summary(outcomes: dict[str, dict[str, Any]]) -> str:
    """One line for an event: how many accepted, and who was refused with what."""
    accepted = sum(1 for o in outcomes.values() if o["status"] == ACCEPTED)
    parts = [f"accepted for {accepted} of {len(outcomes)} recipients"]
    for address, outcome in outcomes.items():
        if outcome["status"] == ACCEPTED:
            continue
        label = "refused" if outcome["status"] == REFUSED else "refused for now, tried again"
        answer = " ".join(str(v) for v in (outcome.get("smtp_code"), outcome.get("smtp_text")) if v)
        parts.append(f"{address} {label}: {answer}".rstrip(": "))
    return "; ".join(parts)


def as_list(outcomes: dict[str, Any]) -> list[dict[str, Any]]:
    """Outcomes keyed by address as the list the API, events and reports show."""
    return [{"address": address, **outcome} for address, outcome in outcomes.items()]


def recipient_records(message: Any) -> list[dict[str, Any]]:
    """Every envelope recipient of a message with its outcome so far, for the API.

    A recipient not answered yet (a message stored before per-recipient outcomes existed,
    or one whose attempts never reached RCPT TO) reads as the message does: accepted when
    it is ``sent``, refused when ``error``, pending otherwise."""
    outcomes = message.recipient_outcomes or {}
    fallback = {"sent": ACCEPTED, "error": REFUSED}.get(message.status, PENDING)
    records = []
    for address in envelope_recipients(message.payload):
        outcome = outcomes.get(address) or recipient_outcome(fallback)
        ts = outcome.get("ts")
        record = {
            "address": address,
            "status": outcome["status"],
            "smtp_code": outcome.get("smtp_code"),
            "enhanced_status": outcome.get("enhanced_status"),
            "smtp_text": outcome.get("smtp_text"),
            "ts": int(ts) if ts else None,
        }
        # A recipient refused for good carries the bounce reason its words gave.
        record.update({k: outcome[k] for k in ("reason", "bounce_type") if outcome.get(k)})
        records.append(record)
    return records
