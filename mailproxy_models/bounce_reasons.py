"""Why a mail was not delivered, from what the receiving server said.

One vocabulary for every failure, whether the server refused the message while we were
sending it (a ``550 5.1.1`` to RCPT) or sent a bounce later: the same words give the same
reason, and the reason alone decides whether the failure is hard and whether the address
goes on the suppression list. The status class does not: a ``552 5.2.2 mailbox full`` is a
5xx, yet the address works again once its owner makes room.

``REASONS`` is the table; docs/bounces.md shows the same table to users. The names follow
the reasons of sisimai, the most thorough bounce parser, so results can be compared.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class BounceReason(StrEnum):
    USER_UNKNOWN = "user_unknown"
    HOST_UNKNOWN = "host_unknown"
    HAS_MOVED = "has_moved"
    NOT_ACCEPTING_MAIL = "not_accepting_mail"
    MAILBOX_FULL = "mailbox_full"
    SUSPENDED = "suspended"
    FILTERED = "filtered"
    EXCEEDED_LIMIT = "exceeded_limit"
    MESSAGE_TOO_BIG = "message_too_big"
    CONTENT_ERROR = "content_error"
    POLICY_VIOLATION = "policy_violation"
    SPAM_DETECTED = "spam_detected"
    VIRUS_DETECTED = "virus_detected"
    BLOCKED = "blocked"
    BAD_REPUTATION = "bad_reputation"
    REQUIRE_PTR = "require_ptr"
    AUTHENTICATION_FAILURE = "authentication_failure"
    SENDER_REJECTED = "sender_rejected"
    RELAYING_DENIED = "relaying_denied"
    RATE_LIMITED = "rate_limited"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    SECURITY_ERROR = "security_error"
    STARTTLS_FAILED = "starttls_failed"
    SYNTAX_ERROR = "syntax_error"
    NOT_COMPLIANT_RFC = "not_compliant_rfc"
    EXPIRED = "expired"
    NETWORK_ERROR = "network_error"
    SYSTEM_ERROR = "system_error"
    SYSTEM_FULL = "system_full"
    MAILER_ERROR = "mailer_error"
    UNDETERMINED = "undetermined"
    DELIVERED = "delivered"
    VACATION = "vacation"
    FEEDBACK = "feedback"


class Suppression(StrEnum):
    """What a failure with this reason does to the recipient's address."""

    AT_ONCE = "at_once"  # the address does not exist: suppressed on the first failure
    REPEATED = "repeated"  # the mailbox has a problem: counted toward the soft-bounce limit
    NEVER = "never"  # the message or the sender had a problem: the address is fine


@dataclass(frozen=True)
class ReasonRule:
    hard: bool  # a permanent failure of the address (only when the mail was given up)
    suppression: Suppression
    failure: bool  # False for what is not a failure: delivered, vacation, feedback
    sisimai: str  # the same reason in sisimai's words
    meaning: str


_HARD, _SOFT = True, False
_AT_ONCE, _REPEATED, _NEVER = Suppression.AT_ONCE, Suppression.REPEATED, Suppression.NEVER

# THE table: docs/bounces.md shows it to users; a test keeps the two the same.
REASONS: dict[BounceReason, ReasonRule] = {
    BounceReason.USER_UNKNOWN: ReasonRule(
        _HARD, _AT_ONCE, True, "userunknown", "the mailbox does not exist"
    ),
    BounceReason.HOST_UNKNOWN: ReasonRule(
        _HARD, _AT_ONCE, True, "hostunknown", "the domain does not exist or has no mail server"
    ),
    BounceReason.HAS_MOVED: ReasonRule(
        _HARD, _AT_ONCE, True, "hasmoved", "the mailbox moved and left no forwarding address"
    ),
    BounceReason.NOT_ACCEPTING_MAIL: ReasonRule(
        _HARD, _AT_ONCE, True, "notaccept", "the domain accepts no mail (null MX)"
    ),
    BounceReason.MAILBOX_FULL: ReasonRule(
        _SOFT, _REPEATED, True, "mailboxfull", "the mailbox is full"
    ),
    BounceReason.SUSPENDED: ReasonRule(
        _SOFT, _REPEATED, True, "suspend", "the mailbox is disabled or suspended for now"
    ),
    BounceReason.FILTERED: ReasonRule(
        _SOFT, _REPEATED, True, "filtered", "the recipient's own rules refused the mail"
    ),
    BounceReason.EXCEEDED_LIMIT: ReasonRule(
        _SOFT, _NEVER, True, "exceedlimit", "the message exceeds the recipient's size limit"
    ),
    BounceReason.MESSAGE_TOO_BIG: ReasonRule(
        _SOFT, _NEVER, True, "mesgtoobig", "the message is larger than the server takes"
    ),
    BounceReason.CONTENT_ERROR: ReasonRule(
        _SOFT, _NEVER, True, "contenterror", "the content or its format was refused"
    ),
    BounceReason.POLICY_VIOLATION: ReasonRule(
        _SOFT, _NEVER, True, "policyviolation", "the content breaks the receiver's policy"
    ),
    BounceReason.SPAM_DETECTED: ReasonRule(
        _SOFT, _NEVER, True, "spamdetected", "the message was taken for spam"
    ),
    BounceReason.VIRUS_DETECTED: ReasonRule(
        _SOFT, _NEVER, True, "virusdetected", "the message was taken for a virus"
    ),
    BounceReason.BLOCKED: ReasonRule(
        _SOFT, _NEVER, True, "blocked", "the sending server or its address is blocked"
    ),
    BounceReason.BAD_REPUTATION: ReasonRule(
        _SOFT, _NEVER, True, "badreputation", "the sending address or domain has a bad reputation"
    ),
    BounceReason.REQUIRE_PTR: ReasonRule(
        _SOFT, _NEVER, True, "requireptr", "the sending server has no valid reverse DNS"
    ),
    BounceReason.AUTHENTICATION_FAILURE: ReasonRule(
        _SOFT, _NEVER, True, "authfailure", "SPF, DKIM or DMARC failed"
    ),
    BounceReason.SENDER_REJECTED: ReasonRule(
        _SOFT, _NEVER, True, "rejected", "the envelope sender was refused"
    ),
    BounceReason.RELAYING_DENIED: ReasonRule(
        _SOFT, _NEVER, True, "norelaying", "the server does not relay for the sender"
    ),
    BounceReason.RATE_LIMITED: ReasonRule(
        _SOFT, _NEVER, True, "speeding", "too much mail too fast"
    ),
    BounceReason.TOO_MANY_CONNECTIONS: ReasonRule(
        _SOFT, _NEVER, True, "toomanyconn", "too many connections or recipients at once"
    ),
    BounceReason.SECURITY_ERROR: ReasonRule(
        _SOFT, _NEVER, True, "securityerror", "a security check failed or is not allowed"
    ),
    BounceReason.STARTTLS_FAILED: ReasonRule(
        _SOFT, _NEVER, True, "failedstarttls", "TLS could not be started"
    ),
    BounceReason.SYNTAX_ERROR: ReasonRule(
        _SOFT, _NEVER, True, "syntaxerror", "the server did not understand a command"
    ),
    BounceReason.NOT_COMPLIANT_RFC: ReasonRule(
        _SOFT, _NEVER, True, "notcompliantrfc", "the message breaks the mail standards"
    ),
    BounceReason.EXPIRED: ReasonRule(
        _SOFT, _REPEATED, True, "expired", "delivery was tried until the queue gave up"
    ),
    BounceReason.NETWORK_ERROR: ReasonRule(
        _SOFT, _REPEATED, True, "networkerror", "the receiving server could not be reached"
    ),
    BounceReason.SYSTEM_ERROR: ReasonRule(
        _SOFT, _REPEATED, True, "systemerror", "the receiving system failed"
    ),
    BounceReason.SYSTEM_FULL: ReasonRule(
        _SOFT, _REPEATED, True, "systemfull", "the receiving system is out of space"
    ),
    BounceReason.MAILER_ERROR: ReasonRule(
        _SOFT, _REPEATED, True, "mailererror", "a local delivery program failed"
    ),
    BounceReason.UNDETERMINED: ReasonRule(
        _SOFT, _REPEATED, True, "undefined", "the server said too little to tell"
    ),
    BounceReason.DELIVERED: ReasonRule(
        _SOFT, _NEVER, False, "delivered", "a notice that the mail was delivered"
    ),
    BounceReason.VACATION: ReasonRule(_SOFT, _NEVER, False, "vacation", "an automatic reply"),
    BounceReason.FEEDBACK: ReasonRule(_SOFT, _NEVER, False, "feedback", "a complaint report (ARF)"),
}


def is_hard(reason: BounceReason, action: str = "failed", status: str | None = None) -> bool:
    """Hard: the address itself is dead. A notice that the server still retries is never,
    nor a failure whose status says it was temporary (4.x.x) about something else than the
    mailbox: the answer may change. A 4.1.1 given up on names the mailbox unknown."""
    temporary = (status or "").startswith("4") and _status_detail(status) != "1.1"
    return action == "failed" and REASONS[reason].hard and not temporary


# --- the classifier ------------------------------------------------------------------------

# Enhanced status codes (RFC 3463 and the IANA registry) whose meaning is a reason by itself.
# x.0.0 and the catch-alls 5.7.1 / 5.5.0 say nothing: for those the text decides.
_BY_STATUS: dict[str, BounceReason] = {
    "1.0": BounceReason.USER_UNKNOWN,
    "1.1": BounceReason.USER_UNKNOWN,
    "1.2": BounceReason.HOST_UNKNOWN,
    "1.3": BounceReason.USER_UNKNOWN,
    "1.4": BounceReason.FILTERED,
    "1.6": BounceReason.HAS_MOVED,
    "1.7": BounceReason.SENDER_REJECTED,
    "1.8": BounceReason.SENDER_REJECTED,
    "1.9": BounceReason.SYSTEM_ERROR,
    "1.10": BounceReason.NOT_ACCEPTING_MAIL,
    "2.1": BounceReason.FILTERED,
    "2.2": BounceReason.MAILBOX_FULL,
    "2.3": BounceReason.EXCEEDED_LIMIT,
    "2.4": BounceReason.FILTERED,
    "3.0": BounceReason.SYSTEM_ERROR,
    "3.1": BounceReason.SYSTEM_FULL,
    "3.2": BounceReason.NOT_ACCEPTING_MAIL,
    "3.3": BounceReason.SYSTEM_ERROR,
    "3.4": BounceReason.MESSAGE_TOO_BIG,
    "3.5": BounceReason.SYSTEM_ERROR,
    "4.0": BounceReason.NETWORK_ERROR,
    "4.1": BounceReason.EXPIRED,
    "4.2": BounceReason.NETWORK_ERROR,
    "4.3": BounceReason.SYSTEM_ERROR,
    "4.4": BounceReason.HOST_UNKNOWN,
    "4.5": BounceReason.SYSTEM_FULL,
    "4.6": BounceReason.NETWORK_ERROR,
    "4.7": BounceReason.EXPIRED,
    "4.8": BounceReason.NETWORK_ERROR,
    "5.2": BounceReason.SYNTAX_ERROR,
    "5.3": BounceReason.TOO_MANY_CONNECTIONS,
    "5.4": BounceReason.SYSTEM_ERROR,
    "5.5": BounceReason.SYSTEM_ERROR,
    "5.6": BounceReason.SYNTAX_ERROR,
    "6.0": BounceReason.CONTENT_ERROR,
    "6.1": BounceReason.CONTENT_ERROR,
    "6.2": BounceReason.CONTENT_ERROR,
    "6.3": BounceReason.CONTENT_ERROR,
    "6.5": BounceReason.CONTENT_ERROR,
    "6.6": BounceReason.CONTENT_ERROR,
    "6.7": BounceReason.CONTENT_ERROR,
    "6.8": BounceReason.CONTENT_ERROR,
    "6.9": BounceReason.CONTENT_ERROR,
    "7.0": BounceReason.SECURITY_ERROR,
    "7.2": BounceReason.SECURITY_ERROR,
    "7.3": BounceReason.SECURITY_ERROR,
    "7.4": BounceReason.SECURITY_ERROR,
    "7.5": BounceReason.SECURITY_ERROR,
    "7.6": BounceReason.SECURITY_ERROR,
    "7.7": BounceReason.SECURITY_ERROR,
    "7.8": BounceReason.SECURITY_ERROR,
    "7.9": BounceReason.SECURITY_ERROR,
    "7.10": BounceReason.SECURITY_ERROR,
    "7.11": BounceReason.SECURITY_ERROR,
    "7.13": BounceReason.SUSPENDED,
    "7.14": BounceReason.SECURITY_ERROR,
    "7.15": BounceReason.SECURITY_ERROR,
    "7.16": BounceReason.MESSAGE_TOO_BIG,
    "7.17": BounceReason.HAS_MOVED,
    "7.18": BounceReason.HAS_MOVED,
    "7.19": BounceReason.SECURITY_ERROR,
    "7.20": BounceReason.AUTHENTICATION_FAILURE,
    "7.21": BounceReason.AUTHENTICATION_FAILURE,
    "7.22": BounceReason.AUTHENTICATION_FAILURE,
    "7.23": BounceReason.AUTHENTICATION_FAILURE,
    "7.24": BounceReason.AUTHENTICATION_FAILURE,
    "7.25": BounceReason.REQUIRE_PTR,
    "7.26": BounceReason.AUTHENTICATION_FAILURE,
    "7.27": BounceReason.NOT_ACCEPTING_MAIL,
    "7.28": BounceReason.SPAM_DETECTED,
    "7.29": BounceReason.AUTHENTICATION_FAILURE,
    "7.30": BounceReason.SECURITY_ERROR,
}
# A 4.x.x status differs from its 5.x.x twin for a few codes only.
_BY_TEMPORARY_STATUS: dict[str, BounceReason] = {
    "2.1": BounceReason.SUSPENDED,
    "3.2": BounceReason.SYSTEM_ERROR,  # busy for now, not a domain that takes no mail
    "4.4": BounceReason.NETWORK_ERROR,
    "7.1": BounceReason.BLOCKED,
    "7.2": BounceReason.BLOCKED,
}
# Codes too general to name a reason when the text names one: the text decides for those;
# every other code of the table decides by itself.
_VAGUE_STATUS = frozenset(
    {"0.0", "1.0", "1.1", "1.3", "1.10", "2.0", "2.1", "3.0", "3.2", "4.0", "4.1", "4.4", "4.7"}
    | {"5.0", "5.4", "7.0", "7.1", "7.9"}
    # "Other address status": qmail writes #4.1.9 for any temporary failure it gave up on.
    | {"1.9"}
)


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(patterns), re.I)


# What servers write, most specific first: the first matching reason wins. Each pattern is
# a phrase seen in real bounces; order matters where one text holds two phrases (a spam
# block that names the mailbox).
_BY_TEXT: tuple[tuple[BounceReason, re.Pattern[str]], ...] = (
    # Phrases that also hold words of a broader reason below ("blocked", "does not exist").
    (
        BounceReason.USER_UNKNOWN,
        # Microsoft's answer for a mailbox its directory does not know.
        _words(r"recipient address rejected: access denied"),
    ),
    (
        BounceReason.NOT_ACCEPTING_MAIL,
        _words(
            r"null mx",
            r"doesn.t receive e-?mail",
            r"no mx record found",
            r"couldn.t find a mail exchanger",
            r"indicated no smtp service",
        ),
    ),
    (
        BounceReason.EXPIRED,
        _words(
            r"did not accept our requests to connect",
            r"not delivered within \d+ days",
        ),
    ),
    (
        BounceReason.MAILER_ERROR,
        # A local delivery program's own complaint, whatever words of the user it quotes.
        _words(r"\bprocmail:"),
    ),
    (
        BounceReason.FILTERED,
        _words(r"recipient preferences"),
    ),
    (
        BounceReason.SPAM_DETECTED,
        # Google Groups' refusal, whose advice goes on about SPF and DKIM.
        _words(r"due to spam classification"),
    ),
    (
        BounceReason.SYNTAX_ERROR,
        _words(r"malformed address"),
    ),
    (
        BounceReason.NOT_COMPLIANT_RFC,
        _words(
            r"multiple addresses in from",
            r"(?<![/\w])rfc ?(?:5322|2822|822)(?![;\w])",
            r"not (?:rfc|standards?)[ -]compliant",
            r"non-?compliant",
            r"duplicate (?:header|message-id)",
        ),
    ),
    (
        BounceReason.POLICY_VIOLATION,
        _words(
            r"content presents a potential",
            r"protocol violation",
            r"denied by policy",
            r"header error",
        ),
    ),
    (
        BounceReason.SECURITY_ERROR,
        _words(
            r"unauthenticated senders",
            r"authentication required",
            r"without (?:smtp )?authentication",
            r"authrequired",
            r"delivery not authorized",
        ),
    ),
    (
        BounceReason.SENDER_REJECTED,
        _words(
            r"sender was rejected",
            r"unroutable sender",
            r"purported responsible address",
            r"provide a valid from",
            r"sender address rejected",
            r"sending to/from an address that has been (?:black|block)listed",
            r"(?:invalid|bad|unknown) sender",
            r"domain of sender address",
        ),
    ),
    (
        BounceReason.SECURITY_ERROR,
        _words(r"\.\.\. access denied"),  # sendmail's access map, not a refused sender
    ),
    (
        BounceReason.SUSPENDED,
        _words(r"recipient account is blocked"),
    ),
    (
        BounceReason.BLOCKED,
        _words(
            r"refused to talk to me",
            r"spamhaus",  # a list of sending hosts, not a verdict on the message
            r"my name was rejected",
            r"relay quota",
            r"invalid ip for sending",
            r"not accepting connections",
            r"client host blocked",
            r"smtp server of your isp",
        ),
    ),
    (
        BounceReason.NETWORK_ERROR,
        _words(
            r"host not found, try again",
            r"unexpected name server reply",
            r"dns query failed",
            r"network error",
            r"able to establish an smtp connection",
            r"too many hops",
            r"mail (?:for \S+ )?loops back",
        ),
    ),
    (
        BounceReason.HOST_UNKNOWN,
        _words(
            r"domain (?:name )?(?:does not exist|not found)",
            r"unrouteable address",
            r"host or domain name not found",
            r"domain is not reachable",
            r"dns lookup failure",
            r"host [\w.-]+ not found",
        ),
    ),
    (
        BounceReason.TOO_MANY_CONNECTIONS,
        _words(
            r"connection rate limit",
            r"too many (?:connections|concurrent|sessions)",
            r"frequency limited",
        ),
    ),
    (
        BounceReason.VIRUS_DETECTED,
        _words(r"virus", r"malware", r"infected", r"\btrojan", r"banned attachment"),
    ),
    (
        BounceReason.REQUIRE_PTR,
        _words(
            r"reverse (?:dns|lookup|hostname)",
            r"\bptr\b",
            r"no rdns",
            r"rdns (?:check|lookup|fail)",
            r"cannot find your hostname",
            r"client host [\w.-]*\s*(?:\[[^\]]*\])? ?(?:has no|without) (?:reverse|ptr)",
            r"hostname (?:does not|doesn.t) resolve",
            r"not resolve your (?:ip|address)",
            r"unresolvable (?:ip|address|host)",
            r"host ?name.* (?:is not|isn.t) (?:valid|resolvable)",
            r"reverse .* mismatch",
            r"\brdns\b",
            r"unverifi?(?:y|i)able sending ips?",
            r"mismatches client ip",
            r"ip name lookup failed",
        ),
    ),
    (
        BounceReason.AUTHENTICATION_FAILURE,
        _words(
            # Near each other: a long text that mentions SPF in its advice is no SPF failure.
            r"\bspf\b.{0,60}(?:fail|reject|check|not pass|permerror|softfail)",
            r"(?:fail|reject).{0,40}\bspf\b",
            r"\bdkim\b.*(?:fail|invalid|not pass|no valid)",
            r"\bdmarc\b",
            r"\bspf record",
            r"bad spf",
            r"sender policy framework",
            r"does not pass (?:spf|dkim|dmarc)",
            r"does not have authentication information",
            r"authentication (?:checks? )?failed",
            r"unauthenticated email",
            r"is not authorized to send",
        ),
    ),
    (
        BounceReason.BAD_REPUTATION,
        _words(
            r"\breputation\b",
            r"low reputation",
            r"sender score",
            r"temporarily deferred due to unexpected volume",
        ),
    ),
    (
        BounceReason.RATE_LIMITED,
        _words(
            r"too many recipients (?:this|per|an|in the last) hour",
            r"rate limit",
            r"ratelimit",
            r"rate of",
            r"too (?:many|much) (?:messages|mail|e-?mails)(?! at once)",
            r"sending (?:too fast|rate)",
            r"receiving mail at a rate",
            r"throttl",
            r"unusual rate",
            r"exceeded the maximum number of messages",
        ),
    ),
    (
        BounceReason.TOO_MANY_CONNECTIONS,
        _words(
            r"too many (?:simultaneous|recipients)",
            r"connection limit",
            r"max(?:imum)? (?:number of )?connections",
            r"too many errors",
        ),
    ),
    (
        BounceReason.HAS_MOVED,
        _words(r"has moved", r"address (?:has )?changed", r"no longer (?:in use|at this address)"),
    ),
    (
        BounceReason.SYSTEM_FULL,
        _words(
            r"system (?:is )?full",
            r"(?:disk|file ?system) (?:is )?full",
            r"out of storage",
            r"insufficient (?:disk space|system storage)",
        ),
    ),
    (
        BounceReason.MAILBOX_FULL,
        _words(
            r"mailbox (?:is )?full",
            r"mail ?box (?:is )?(?:over|exceeded|exceeds)",
            r"over ?quota",
            r"quota (?:exceeded|full|violation|is full|limit)",
            r"exceed(?:ed|s)? (?:the |their |his |her |its )?(?:storage|mailbox|disk|quota)",
            r"(?:storage|disk) (?:quota|space|allocation) (?:exceeded|full)",
            r"insufficient storage",
            r"mailbox size limit",
            r"folder is full",
            r"mail ?box.{0,30}(?:is )?full",
            r"user.{0,20} (?:is )?over.{0,10}quota",
            r"not enough (?:disk )?space",
            r"no space left",
            r"account is full",
            r"inbox is full",
            r"full mailbox",
            r"exceeded storage allocation",
            r"maildir over quota",
            r"has exceeded (?:the|its|his|her) (?:quota|storage)",
        ),
    ),
    (
        BounceReason.MESSAGE_TOO_BIG,
        _words(
            r"message (?:is )?too (?:big|large|long)",
            r"(?:message|mail) size (?:exceeds|too)",
            r"exceeds? (?:the )?(?:maximum )?(?:allowed )?(?:message )?size",
            r"size limit",
            r"message length exceeds",
            r"line limit exceeded",
            r"too large",
            r"maximum (?:message )?size",
            r"size exceeds",
        ),
    ),
    (
        BounceReason.SPAM_DETECTED,
        _words(
            r"\bspam\b",
            r"junk mail",
            r"unsolicited",
            r"bulk mail",
            r"classified as (?:junk|spam)",
            r"content (?:filter|rejected)",
            r"message content rejected",
            r"\buce\b",
            r"scored too high",
            r"looks like spam",
            r"detected as spam",
            r"spam classification",
            r"blacklisted url",
            r"\buribl\b",
            r"spam score",
        ),
    ),
    (
        BounceReason.SUSPENDED,
        _words(
            r"suspended",
            r"account (?:is |has been )?(?:disabled|inactive|locked|expired|frozen)",
            r"mailbox (?:is |has been )?(?:disabled|inactive|locked|suspended|frozen)",
            r"inactive (?:user|account|mailbox)",
            r"disabled (?:user|account|mailbox|recipient)",
            r"user account disabled",
            r"not active",
            r"is deactivated",
            r"temporarily disabled",
            r"temporar(?:y|ily) locked",
            r"is inactive",
            r"account that you tried to reach is disabled",
        ),
    ),
    (
        BounceReason.USER_UNKNOWN,
        _words(
            r"user ?(?:name )?unknown",
            r"unknown (?:user|recipient|local ?part|mailbox|address|e-?mail)",
            r"no such (?:user|mailbox|recipient|address|account|local user|person)",
            r"(?:user|mailbox|recipient|address|account)\b.{0,40}(?:does not|doesn.t) exist",
            r"does not exist",
            r"not (?:a )?(?:valid|known) (?:user|recipient|mailbox|address)",
            r"(?:invalid|unknown|bad) (?:recipient|mailbox|user|address|destination address)",
            r"user (?:not|is not) (?:found|known|listed)",
            r"(?:mailbox|user|recipient|address|account) (?:is )?(?:not found|not listed)",
            r"mailbox unavailable",
            r"no mailbox",
            r"address (?:not found|unknown)",
            r"couldn.t be found",
            r"not our customer",
            r"no valid recipients",
            r"unknown address",
            r"recipient address rejected\.?$",
            r"user not exist",
            r"illegal user",
            r"delivery userid",
            r"addressee unknown",
            r"account (?:does not exist|not found|unavailable)",
            r"no account",
            r"recipient not found",
            r"not listed in",
            r"user doesn.t have a",
            r"this user doesn.t have",
            r"is not a valid",
            r"undeliverable address",
            r"address lookup fail",
            r"sorry, no mailbox here",
            r"there is no one at this address",
            r"user does not exist",
            r"invalid recipient",
            r"no such recipient",
            r"mailbox not found",
            r"recipient unknown",
            r"recipient name is not recognized",
            r"ディレクトリには見つかりません",
            r"ディレクトリのリストにありません",
        ),
    ),
    (
        BounceReason.HOST_UNKNOWN,
        _words(
            r"host (?:or domain name )?not found",
            r"host unknown",
            r"unknown host",
            r"domain (?:name )?(?:not found|does not exist|unknown|is not valid)",
            r"unrouteable (?:mail )?domain",
            r"no (?:mx|a) record",
            r"name service error",
            r"name or service not known",
            r"nxdomain",
            r"domain .{0,40}has no mx",
            r"host name lookup failure",
            r"no route to host .* domain",
            r"unknown domain",
            r"invalid domain",
            r"recipient domain .{0,30}(?:not exist|invalid)",
            r"couldn.t find any host",
            r"no such domain",
            r"dns error",
            r"domain lookup failed",
            r"all relevant mx records point to non-existent hosts",
        ),
    ),
    (
        BounceReason.RELAYING_DENIED,
        _words(
            r"relay(?:ing)? (?:access )?(?:denied|not permitted|not allowed|prohibited)",
            r"not permitted to relay",
            r"unable to relay",
            r"we do not relay",
            r"relay not",
            r"no relaying",
            r"relaying (?:denied|disallowed|to)",
            r"not a gateway",
            r"address is not verified",
            r"is not configured to relay",
        ),
    ),
    (
        BounceReason.BLOCKED,
        _words(
            r"\bblock(?:ed|list|ing)?\b",
            r"black ?list",
            r"deny ?list",
            r"\brbl\b",
            r"\bdnsbl\b",
            r"listed (?:at|on|in) ",
            r"access denied",
            r"connection refused",
            r"not allowed to (?:send|connect)",
            r"banned",
            r"your (?:ip|host|network|server)",
            r"client host .*rejected",
            r"poor reputation",
            r"not accepting (?:mail|connections) from",
            r"sender ip",
            r"ip address",
            r"\b(?:denied|refused)\b",
        ),
    ),
    (
        BounceReason.POLICY_VIOLATION,
        _words(
            r"policy",
            r"prohibited",
            r"not (?:allowed|permitted)",
            r"restricted",
            r"rejected by (?:the )?(?:recipient|administrator)",
        ),
    ),
    (
        BounceReason.SENDER_REJECTED,
        _words(
            r"sender (?:address )?(?:rejected|refused|denied|unknown|invalid|verify failed)",
            r"domain of sender",
            r"sender domain",
            r"envelope sender",
        ),
    ),
    (
        BounceReason.FILTERED,
        _words(r"filter", r"rejected by recipient", r"refused by recipient"),
    ),
    (
        BounceReason.EXPIRED,
        _words(
            r"retry time(?:out)? (?:not reached|exceeded)",
            r"retry timeout",
            r"too long in (?:the )?queue",
            r"in the queue too long",
            r"aborted after \d+(?:\.\d+)? (?:hour|day)",
            r"queue(?:d too long| time| lifetime)",
            r"delivery time expired",
            r"(?:delivery|message) expired",
            r"giving up",
            r"hosts have been failing",
            r"failed \d+ attempts",
            r"could not be delivered for \d",
            r"has not been delivered for",
            r"expired",
            r"timed? ?out",
            r"time limit",
            r"unable to deliver .* for \d+ (?:hours|days)",
        ),
    ),
    (
        BounceReason.NETWORK_ERROR,
        _words(
            r"connection (?:timed out|reset|lost|closed|dropped)",
            r"network (?:is )?unreachable",
            r"could not connect",
            r"unable to connect",
            r"connect to .* failed",
            r"no route to host",
            r"mail loop",
            r"routing loop",
            r"too many hops",
            r"loops back",
            r"lost connection",
            r"host unreachable",
            r"temporary (?:dns|lookup) failure",
        ),
    ),
    (
        BounceReason.STARTTLS_FAILED,
        _words(r"starttls", r"\btls\b.*(?:required|fail|handshake)"),
    ),
    (
        BounceReason.CONTENT_ERROR,
        _words(
            r"content",
            r"attachment",
            r"mime",
            r"header",
            r"8-?bit",
            r"line too long",
            r"encoding",
        ),
    ),
    (
        BounceReason.MAILER_ERROR,
        _words(
            r"mailer error",
            r"local mailer",
            r"local delivery",
            r"unknown mailer",
            r"command (?:failed|died|not found)",
            r"pipe to",
            r"procmail",
            r"exit(?:ed)? (?:status|code)",
            r"program",
        ),
    ),
    (
        BounceReason.SYNTAX_ERROR,
        _words(
            r"syntax error",
            r"command unrecognized",
            r"bad sequence",
            r"improper sequence",
            r"unrecognized command",
            r"not implemented",
        ),
    ),
    (
        BounceReason.SYSTEM_ERROR,
        _words(
            r"system error",
            r"internal error",
            r"server error",
            r"local error",
            r"temporary (?:failure|error|problem)",
            r"service (?:not available|(?:currently )?unavailable)",
            r"try again later",
            r"resources",
            r"configuration error",
            r"transaction failed",
            r"misconfigur",
            r"could not load",
        ),
    ),
)


def classify_reason(
    smtp_code: int | None,
    enhanced_status: str | None,
    text: str | None,
    command: str | None = None,
    diagnostic_type: str | None = None,
) -> BounceReason:
    """The reason of one failure from the reply code, the enhanced status, the text and,
    when known, the SMTP command that was refused (RCPT, DATA, MAIL) and the type of the
    report's Diagnostic-Code ("smtp", "x-unix").

    A mailbox that "does not exist" once the message was sent (at DATA) passed RCPT: it
    exists and a filter refused the mail. At MAIL, it is the sender that was refused.
    """
    by_provider = reason_from_provider_code(text or "")
    if by_provider is not None:
        return by_provider  # the provider's own code for this refusal: nothing is more precise
    reason = _classify(smtp_code, enhanced_status, text)
    if (diagnostic_type or "").strip().lower() == "x-unix" and reason not in _STORAGE_REASONS:
        # The exit of a local delivery program (an exit status, a procmail complaint): the
        # program failed; only a full mailbox or disk is worth its own name.
        return BounceReason.MAILER_ERROR
    stage = (command or "").strip().upper()
    temporary = (enhanced_status or str(smtp_code or ""))[:1] == "4"
    if reason is BounceReason.HOST_UNKNOWN and temporary:
        return BounceReason.NETWORK_ERROR  # a DNS answer that may change: not a dead domain
    detail = _status_detail(enhanced_status)
    mailbox_status = detail in ("2.0", "2.1", "2.4", "1.4")
    # An explicit 5.1.1 ("bad destination mailbox") keeps its meaning at any stage.
    # A "user unknown" under an explicit "other or undefined" status (5.0.0) or under no
    # status at all, not said to RCPT: nothing but the words says the address is dead, and
    # filters answer with the same words. Lean soft, unless the words are a directory's.
    if reason is BounceReason.UNDETERMINED and stage in ("HELO", "CONNECT"):
        return BounceReason.BLOCKED  # refused before any address was given: the sending host
    if reason is BounceReason.USER_UNKNOWN and stage == "MAIL":
        return BounceReason.SENDER_REJECTED
    directory = bool(_DIRECTORY_ANSWER.search(text or ""))
    unproven = detail in ("0.0", None) and not directory
    if reason is BounceReason.USER_UNKNOWN and (
        (stage == "DATA" and detail != "1.1" and not directory)
        or ((mailbox_status or unproven) and stage != "RCPT")
    ):
        # A mailbox status ("disabled", "list problem") with a "user unknown": a filter.
        return BounceReason.FILTERED
    return reason


# Refusal codes that large mailbox providers write into their replies and document on their
# postmaster pages: each names the cause more precisely than the status or the words.
_ORANGE_CODE = re.compile(r"\b(?:OFR|LPN|OUK)\d*_(\d{3})\b", re.I)  # Orange / Wanadoo / La Poste
_ORANGE: dict[str, BounceReason] = {
    **dict.fromkeys(("101", "102", "103", "510", "999"), BounceReason.BLOCKED),
    "104": BounceReason.TOO_MANY_CONNECTIONS,
    **dict.fromkeys(("305", "402"), BounceReason.SECURITY_ERROR),
    **dict.fromkeys(("401", "517"), BounceReason.AUTHENTICATION_FAILURE),
    **dict.fromkeys(("403", "405", "415", "421"), BounceReason.SENDER_REJECTED),
    "416": BounceReason.USER_UNKNOWN,
    "417": BounceReason.MAILBOX_FULL,
    **dict.fromkeys(("420", "426"), BounceReason.SUSPENDED),
    "505": BounceReason.SYSTEM_ERROR,
    "506": BounceReason.SPAM_DETECTED,
    "514": BounceReason.MESSAGE_TOO_BIG,
    "630": BounceReason.POLICY_VIOLATION,
}
_COX_CODE = re.compile(r"\bAUP#(C[XD][A-Z]+|IPBL\d{4})\b")  # Cox
_COX: dict[str, BounceReason] = {
    "CXBL": BounceReason.BLOCKED,
    "CDRBL": BounceReason.BLOCKED,
    "CXDNS": BounceReason.REQUIRE_PTR,
    "CXSNDR": BounceReason.AUTHENTICATION_FAILURE,
    "CXSMTP": BounceReason.SENDER_REJECTED,
    "CXCNCT": BounceReason.TOO_MANY_CONNECTIONS,
    "CXMXRT": BounceReason.TOO_MANY_CONNECTIONS,
    "CXTHRT": BounceReason.SECURITY_ERROR,
    "CXMJ": BounceReason.SECURITY_ERROR,
}
_SPECTRUM_CODE = re.compile(r"\bAUP#[A-Za-z-]*(1\d{3})\b")  # Spectrum (Charter)
# (first code, last code, reason): the documented ranges of Spectrum's AUP codes.
_SPECTRUM: tuple[tuple[int, int, BounceReason], ...] = (
    (1000, 1000, BounceReason.BLOCKED),
    (1010, 1080, BounceReason.SENDER_REJECTED),
    (1090, 1090, BounceReason.SYSTEM_ERROR),
    (1100, 1150, BounceReason.REQUIRE_PTR),
    (1160, 1190, BounceReason.POLICY_VIOLATION),
    (1200, 1250, BounceReason.BLOCKED),
    (1260, 1260, BounceReason.NETWORK_ERROR),
    (1300, 1340, BounceReason.TOO_MANY_CONNECTIONS),
    (1350, 1490, BounceReason.RATE_LIMITED),
    (1500, 1520, BounceReason.SENDER_REJECTED),
    (1530, 1530, BounceReason.MESSAGE_TOO_BIG),
    (1540, 1580, BounceReason.RATE_LIMITED),
)


def reason_from_provider_code(text: str) -> BounceReason | None:
    """The reason a provider's documented refusal code in the text names, else None."""
    found = _ORANGE_CODE.search(text)
    if found and found.group(1) in _ORANGE:
        return _ORANGE[found.group(1)]
    found = _COX_CODE.search(text)
    if found:
        code = found.group(1)
        return BounceReason.BLOCKED if code.startswith("IPBL") else _COX.get(code)
    found = _SPECTRUM_CODE.search(text)
    if found:
        number = int(found.group(1))
        return next((r for first, last, r in _SPECTRUM if first <= number <= last), None)
    return None


_STORAGE_REASONS = frozenset({BounceReason.MAILBOX_FULL, BounceReason.SYSTEM_FULL})
# Words only a directory lookup of the recipient answers: the address is not in it, whatever
# the status or the stage.
_DIRECTORY_ANSWER = re.compile(
    r"recipient name is not recognized|not listed in (?:the )?(?:domino|public name|"
    r"directory)|invalid final delivery userid|no valid recipients for this|"
    r"\bdd this user doesn.t have an? [\w.-]+ account|^unknown user: \S+@|"
    # Lotus Domino / Notes in Japanese: "not found in the directory", "not in its list".
    r"ディレクトリには見つかりません|ディレクトリのリストにありません",
    re.I,
)


# The categories some sending MTAs write into their own reports (PowerMTA's
# X-PowerMTA-BounceCategory): the reporting MTA has classified the failure already.
_BY_CATEGORY: dict[str, BounceReason] = {
    "bad-domain": BounceReason.HOST_UNKNOWN,
    "bad-mailbox": BounceReason.USER_UNKNOWN,
    "inactive-mailbox": BounceReason.SUSPENDED,
    "message-expired": BounceReason.EXPIRED,
    "no-answer-from-host": BounceReason.NETWORK_ERROR,
    "policy-related": BounceReason.POLICY_VIOLATION,
    "quota-issues": BounceReason.MAILBOX_FULL,
    "routing-errors": BounceReason.SYSTEM_ERROR,
    "spam-related": BounceReason.SPAM_DETECTED,
}


def reason_from_category(category: str | None) -> BounceReason | None:
    """The reason a reporting MTA's own bounce category names; None for other words."""
    return _BY_CATEGORY.get((category or "").strip().lower())


def refused_command(text: str) -> str | None:
    """The SMTP command a server's refusal answered, as the bounce text tells it."""
    found = _COMMAND.search(text or "")
    if found is None:
        return None
    if found.group(1) is None:
        return "RCPT"  # qmail's "does not like recipient", Yahoo's "[RCPT_TO]"
    word = found.group(1).upper()
    if word in ("EHLO", "HELO"):
        return "HELO"
    if word == "INITIAL CONNECTION":
        return "CONNECT"
    return (
        "DATA" if word in ("DATA", "END OF DATA") else "RCPT" if word.startswith("RCPT") else "MAIL"
    )


_COMMAND = re.compile(
    r"(?:after|in reply to|>>>|smtp command:?|did not like our)[\s-]*"
    r"(end of data|data|rcpt(?: to)?|mail(?: from)?|ehlo|helo|initial connection)\b"
    r"|does not like recipient|\[RCPT_TO\]",
    re.I,
)


def _classify(smtp_code: int | None, enhanced_status: str | None, text: str | None) -> BounceReason:
    """A precise status code decides; otherwise the first phrase of the text that names a
    reason; otherwise the status code's subject; otherwise UNDETERMINED. Never raises."""
    status = _status_detail(enhanced_status)
    temporary = (enhanced_status or "").startswith("4") or str(smtp_code or "").startswith("4")
    by_status = None
    if status is not None:
        by_status = (_BY_TEMPORARY_STATUS.get(status) if temporary else None) or _BY_STATUS.get(
            status
        )
        if status not in _VAGUE_STATUS and by_status is not None:
            return by_status
    by_text = reason_from_text(text or "")
    if by_text is not None:
        return by_text
    if by_status is not None:
        return by_status
    # A delivery: a 2.x.x status, or without one a reply that starts with a 2xx code; not a
    # number that only looks like one ("X-Unix; 255", "Size (in bytes): 222").
    if (enhanced_status or "").startswith("2") or (
        enhanced_status is None
        and str(smtp_code or "").startswith("2")
        and (text or "").lstrip().startswith(str(smtp_code))
    ):
        return BounceReason.DELIVERED
    return BounceReason.UNDETERMINED


def reason_from_text(text: str) -> BounceReason | None:
    """The first reason whose phrases the text holds, None when it holds none."""
    # Multi-line replies repeat their code on each line ("550-5.7.1 ... 550 5.7.1 ..."):
    # without the repeats the phrase split over lines reads whole.
    sample = _CONTINUED_CODE.sub(" ", " ".join(text[:4000].split()))
    for reason, pattern in _BY_TEXT:
        if pattern.search(sample):
            return reason
    return None


_CONTINUED_CODE = re.compile(r"(?<=\w) [245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3} )?(?=[a-z])")


def _status_detail(enhanced_status: str | None) -> str | None:
    """ "5.1.1" -> "1.1"; None for a status that is not one."""
    parts = (enhanced_status or "").strip().split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts) or parts[0] not in "245":
        return None
    return f"{int(parts[1])}.{int(parts[2])}"


def reasons_markdown() -> str:
    """The table as docs/bounces.md shows it (a test keeps the two the same)."""
    lines = [
        "| reason | meaning | hard | suppression | sisimai |",
        "|---|---|---|---|---|",
    ]
    for reason, rule in REASONS.items():
        hard = "hard" if rule.hard else ("soft" if rule.failure else "not a failure")
        lines.append(
            f"| `{reason.value}` | {rule.meaning} | {hard} | {rule.suppression.value} "
            f"| `{rule.sisimai}` |"
        )
    return "\n".join(lines) + "\n"
