"""Customer-question detector: does one group message open a Question? (sla.md §7.3).

Pure and synchronous. The cascade, first match wins:

1. media, emoji/punctuation or a link only, or exempt phrases (谢谢, 好的, 👍) -> never opens;
2. the message @mentions staff -> opens with score ``mention_score`` (0.9);
3. an ad posted by a customer (砍一刀, 招代理, promo cue plus link) -> does not open;
4. rule cues (question mark, interrogatives, clause-final particles, request and complaint cues,
   English cues) -> score 0.7-0.95; rhetorical markers subtract ``rhetorical_penalty``; the message
   opens when the score reaches ``threshold``.

Word lists live in :mod:`sop.wordlists`. A tenant tunes them through :class:`DetectorConfig`:
``DEFAULT.with_overrides(threshold=0.7)`` replaces fields and
``DEFAULT.with_extra(request_cues=("售后",))`` appends to list fields. Patterns are compiled
once per config, at construction.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sop import wordlists as wl

__all__ = [
    "DEFAULT",
    "Detection",
    "DetectorConfig",
    "classify",
    "is_acknowledgement",
    "is_exempt",
    "is_holding_reply",
]


@dataclass(frozen=True, slots=True)
class Detection:
    """Verdict on one message: whether it opens a question, a 0..1 score and a short reason."""

    is_question: bool
    score: float
    reason: str


@dataclass(frozen=True, slots=True)
class _Patterns:
    """Compiled regexes for one config (built once, never compared)."""

    trad: dict[int, int]
    question_mark: re.Pattern[str]
    interrogative: re.Pattern[str]
    particle: re.Pattern[str]
    request: re.Pattern[str]
    en_interrogative: re.Pattern[str]
    en_cue: re.Pattern[str]
    not_cue: re.Pattern[str]
    rhetorical: re.Pattern[str]
    promo: re.Pattern[str]
    exempt: re.Pattern[str]
    filler: re.Pattern[str]
    holding: re.Pattern[str]
    ack: re.Pattern[str]


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Word lists and thresholds for the detector; defaults come from :mod:`sop.wordlists`."""

    question_marks: tuple[str, ...] = wl.QUESTION_MARKS
    interrogatives: tuple[str, ...] = wl.INTERROGATIVES
    particles: tuple[str, ...] = wl.PARTICLES
    request_cues: tuple[str, ...] = wl.REQUEST_CUES
    english_interrogatives: tuple[str, ...] = wl.ENGLISH_INTERROGATIVES
    english_cues: tuple[str, ...] = wl.ENGLISH_CUES
    not_cues: tuple[str, ...] = wl.NOT_CUES
    rhetorical_cues: tuple[str, ...] = wl.RHETORICAL_CUES
    promo_cues: tuple[str, ...] = wl.PROMO_CUES
    exempt_phrases: tuple[str, ...] = wl.EXEMPT_PHRASES
    fillers: tuple[str, ...] = wl.FILLERS
    holding_phrases: tuple[str, ...] = wl.HOLDING_PHRASES
    ack_phrases: tuple[str, ...] = wl.ACK_PHRASES
    threshold: float = 0.6
    mention_score: float = 0.9
    rhetorical_penalty: float = 0.3
    min_chars: int = 2
    # Long posts are stories or ads; the ask sits at the start or the end, so scan only those.
    long_text_chars: int = 400
    # "谢谢小美": an exempt phrase may carry this many leftover characters (a name) if cue-free.
    exempt_residual_max: int = 2
    # Exempt messages are short; longer ones skip the exempt pass (speed only).
    exempt_max_chars: int = 40
    # Leftover words/characters a holding reply or acknowledgement may carry ("稍等 我查下订单").
    reply_residual_max: int = 4
    patterns: _Patterns = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "patterns", _compile(self))

    def with_overrides(self, **changes: Any) -> DetectorConfig:
        """Return a copy with the given fields replaced (lists, thresholds)."""
        return replace(self, **changes)

    def with_extra(self, **additions: tuple[str, ...]) -> DetectorConfig:
        """Return a copy with phrases appended to the given list fields."""
        names = {f.name for f in fields(self) if f.init}
        merged: dict[str, Any] = {}
        for name, extra in additions.items():
            current = getattr(self, name) if name in names else None
            if not isinstance(current, tuple):
                raise TypeError(f"{name!r} is not a word-list field of DetectorConfig")
            merged[name] = current + tuple(extra)
        return replace(self, **merged)


_CJK = r"\u3400-\u9fff"
_URL_RE = re.compile(
    r"(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:cn|com|net|tv|cc|me)/\S*"
    r"|[¥$€][a-z0-9]{6,16}[¥$€]",  # 淘口令 travels like a link
)
_CODE_RE = re.compile(r"\[cq:[^\]]*\]|\[[^\[\]\s]{1,8}\]")  # CQ codes, [捂脸] [图片] placeholders
_MENTION_RE = re.compile(r"(?:^|(?<=\s))@[^\s@]{1,24}(?=\s|$)")
_NON_WORD_RE = re.compile(r"[\W_]+")
_UNIT_RE = re.compile(rf"[{_CJK}]|[a-z0-9]+")
# Question structures no word list captures: A-not-A (好不好, 透不透, 发没发) and alternatives
# (是物理防晒还是化学防晒, 偏大还是偏小).
_STRUCTURE_RE = re.compile(
    rf"([{_CJK}])[不没]\1|是[{_CJK}a-z0-9]{{1,12}}还是|([{_CJK}])[{_CJK}]?还是\2"
)


def _norm(text: str, trad: dict[int, int]) -> str:
    return unicodedata.normalize("NFKC", text).casefold().translate(trad)


def _alternation(phrases: tuple[str, ...], trad: dict[int, int]) -> str:
    """Escaped alternation, longest first so 怎么这么 wins over 怎么; never matches if empty.

    Latin phrases are bounded as whole words ("ok" must not fire inside "book").
    """
    items = {_norm(p, trad).strip() for p in phrases}
    items.discard("")
    if not items:
        return r"(?!x)x"

    def one(p: str) -> str:
        if p.isascii() and p[0].isalnum() and p[-1].isalnum():
            return rf"(?<![a-z0-9']){re.escape(p)}(?![a-z0-9'])"
        return re.escape(p)

    return "|".join(one(p) for p in sorted(items, key=lambda p: (-len(p), p)))


def _compile(cfg: DetectorConfig) -> _Patterns:
    pairs = wl.TRADITIONAL_PAIRS.split()
    trad = str.maketrans("".join(p[0] for p in pairs), "".join(p[1] for p in pairs))
    alt = _alternation
    clause_start = r"(?:^|[.!?,;:~]\s*|\s{2,})(?:(?:hi|hello|hey)\b[\s,]*)?"
    return _Patterns(
        trad=trad,
        question_mark=re.compile(alt(cfg.question_marks, trad)),
        interrogative=re.compile(alt(cfg.interrogatives, trad)),
        # \w covers CJK, so "么么哒" and "呢喃" do not count as clause-final particles.
        particle=re.compile(rf"(?:{alt(cfg.particles, trad)})(?!\w)"),
        request=re.compile(alt(cfg.request_cues, trad)),
        en_interrogative=re.compile(rf"{clause_start}(?:{alt(cfg.english_interrogatives, trad)})"),
        en_cue=re.compile(alt(cfg.english_cues, trad)),
        not_cue=re.compile(alt(cfg.not_cues, trad)),
        rhetorical=re.compile(alt(cfg.rhetorical_cues, trad)),
        promo=re.compile(alt(cfg.promo_cues, trad)),
        exempt=re.compile(alt(cfg.exempt_phrases, trad)),
        filler=re.compile(alt(cfg.fillers, trad)),
        holding=re.compile(alt(cfg.holding_phrases, trad)),
        ack=re.compile(alt(cfg.ack_phrases, trad)),
    )


DEFAULT = DetectorConfig()


@dataclass(frozen=True, slots=True)
class _Prepared:
    body: str  # normalised text, mentions, codes and links removed
    core: str  # body without spaces, punctuation and emoji
    has_link: bool


def _prepare(text: str, cfg: DetectorConfig) -> _Prepared:
    if len(text) > cfg.long_text_chars:
        half = cfg.long_text_chars // 2
        text = f"{text[:half]} {text[-half:]}"
    s = _norm(text, cfg.patterns.trad)
    # Cheap membership tests skip regex passes that cannot match (most messages).
    if "[" in s:
        s = _CODE_RE.sub(" ", s)
    if "@" in s:
        s = _MENTION_RE.sub(" ", s)
    n_links = 0
    if "." in s or "/" in s or "¥" in s or "$" in s or "€" in s:
        s, n_links = _URL_RE.subn(" ", s)
    return _Prepared(body=s, core=_NON_WORD_RE.sub("", s), has_link=n_links > 0)


def _units(text: str) -> int:
    """Size of leftover text: CJK characters plus latin/digit words."""
    return len(_UNIT_RE.findall(text))


def _residual(body: str, phrases: re.Pattern[str], p: _Patterns) -> int | None:
    """Units left after removing phrases and fillers, or None if no phrase matched."""
    rest, hits = phrases.subn(" ", body)
    if not hits:
        return None
    return _units(p.filler.sub(" ", rest))


def _rule_score(body: str, cfg: DetectorConfig) -> tuple[float, str]:
    p = cfg.patterns
    # A word placeholder, not a space: it must not create a clause start for English cues.
    q = p.not_cue.sub("_", body)
    hits: dict[str, float] = {}
    if p.request.search(q) or p.en_cue.search(q):
        hits["request"] = 0.85
    if p.question_mark.search(q):
        hits["question_mark"] = 0.8
    if p.interrogative.search(q) or _STRUCTURE_RE.search(q) or p.en_interrogative.search(q):
        hits["interrogative"] = 0.75
    if p.particle.search(q):
        hits["particle"] = 0.7
    if not hits:
        return 0.0, "none"
    reason = max(hits, key=hits.__getitem__)
    # Independent cues agreeing make the verdict surer.
    score = min(0.95, hits[reason] + 0.05 * (len(hits) - 1))
    if p.rhetorical.search(body):
        score -= cfg.rhetorical_penalty
        if score < cfg.threshold:
            reason = "rhetorical"
    return round(score, 3), reason


def _exempt(prep: _Prepared, cfg: DetectorConfig) -> bool:
    if len(prep.core) > cfg.exempt_max_chars:
        return False
    p = cfg.patterns
    left = _residual(prep.body, p.exempt, p)
    if left is None:
        return False
    if left == 0:
        return True
    return left <= cfg.exempt_residual_max and _rule_score(prep.body, cfg)[0] < cfg.threshold


def classify(
    text: str,
    *,
    mentions_staff: bool = False,
    media_only: bool = False,
    cfg: DetectorConfig = DEFAULT,
) -> Detection:
    """Decide whether one customer message opens a question (cascade in the module docstring)."""
    if media_only:
        return Detection(False, 0.0, "media_only")
    prep = _prepare(text, cfg)
    if not prep.core:
        if prep.has_link:
            return Detection(False, 0.0, "link_only")
        return Detection(False, 0.0, "emoji_only" if text.strip() else "empty")
    if _exempt(prep, cfg):
        return Detection(False, 0.0, "exempt")
    if mentions_staff:
        return Detection(True, cfg.mention_score, "mention_staff")
    score, reason = _rule_score(prep.body, cfg)
    promo_hits = len(set(cfg.patterns.promo.findall(prep.body)))
    if promo_hits >= 2 or (promo_hits and prep.has_link):
        return Detection(False, min(score, 0.1), "promo")
    if len(prep.core) < cfg.min_chars and reason != "question_mark":
        return Detection(False, 0.0, "too_short")
    return Detection(score >= cfg.threshold, score, reason)


def is_exempt(text: str, cfg: DetectorConfig = DEFAULT) -> bool:
    """True for messages that never open a question: thanks/ok/greetings, emoji or links only."""
    prep = _prepare(text, cfg)
    return not prep.core or _exempt(prep, cfg)


def is_holding_reply(text: str, cfg: DetectorConfig = DEFAULT) -> bool:
    """True for a staff message that only says "wait, I'm checking" (稍等, 我查一下, hold on)."""
    prep = _prepare(text, cfg)
    p = cfg.patterns
    # Remove exempt words too: "收到，马上处理" is still only a holding reply.
    left = _residual(p.exempt.sub(" ", prep.body), p.holding, p)
    return left is not None and left <= cfg.reply_residual_max


def is_acknowledgement(text: str, cfg: DetectorConfig = DEFAULT) -> bool:
    """True for a customer's thanks/ok after an answer (谢谢, 明白了, got it), not a question."""
    prep = _prepare(text, cfg)
    left = _residual(prep.body, cfg.patterns.ack, cfg.patterns)
    if left is None or left > cfg.reply_residual_max:
        return False
    return _rule_score(prep.body, cfg)[0] < cfg.threshold
