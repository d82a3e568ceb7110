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

The intake needs three verdicts per customer message (:func:`classify`,
:func:`is_acknowledgement`, :func:`is_exempt`); :func:`analyze` gives all three from one
normalisation pass, with the same results as the separate calls.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, fields, replace
from typing import Any

from sop import wordlists as wl

__all__ = [
    "DEFAULT",
    "Analysis",
    "Detection",
    "DetectorConfig",
    "analyze",
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
class Analysis:
    """The intake's verdicts on one customer message, from a single normalisation pass.

    ``detection`` equals ``classify(text, mentions_staff=..., media_only=..., cfg=cfg)``,
    ``is_ack`` equals ``is_acknowledgement(text, cfg)`` and ``is_exempt`` equals plain
    ``is_exempt(text, cfg)``. ``is_exempt`` ignores ``media_only``: a caller that never treats
    media as exempt (the question handler) still writes ``not media_only and a.is_exempt``.
    """

    detection: Detection
    is_ack: bool
    is_exempt: bool


@dataclass(frozen=True, slots=True)
class _Patterns:
    """Compiled regexes and derived tables for one config (built once, never compared)."""

    trad: dict[int, int]
    # str.translate costs ~1 µs on CJK text and rarely changes anything: look first.
    trad_chars: re.Pattern[str]
    ascii_trad: bool  # the table maps some ASCII character (never, with the default pairs)
    question_mark: re.Pattern[str]
    interrogative: re.Pattern[str]
    particle: re.Pattern[str]
    request: re.Pattern[str]
    en_interrogative: re.Pattern[str]
    # Its words alone: a fast scan that rules out most CJK messages before the slow pattern.
    en_interrogative_hint: re.Pattern[str]
    en_cue: re.Pattern[str]
    not_cue: re.Pattern[str]
    rhetorical: re.Pattern[str]
    promo: re.Pattern[str]
    exempt: re.Pattern[str]
    filler: re.Pattern[str]
    holding: re.Pattern[str]
    # One space-free piece of each holding phrase; a reply containing none cannot hold.
    holding_hint: re.Pattern[str]
    ack: re.Pattern[str]
    ack_needs_word: bool  # every ack phrase has a letter, digit or CJK character
    # Matches when the text has at least min_chars letters/digits/CJK: the too-short test
    # without building the text's core (it stops after min_chars of them).
    enough_chars: re.Pattern[str]


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


_NEVER = r"(?!x)x"
_CJK = r"\u3400-\u9fff"
_URL_RE = re.compile(
    r"(?:https?://|www\.)\S+|\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:cn|com|net|tv|cc|me)/\S*"
    r"|[¥$€][a-z0-9]{6,16}[¥$€]",  # 淘口令 travels like a link
)
_CODE_RE = re.compile(r"\[cq:[^\]]*\]|\[[^\[\]\s]{1,8}\]")  # CQ codes, [捂脸] [图片] placeholders
_MENTION_RE = re.compile(r"(?:^|(?<=\s))@[^\s@]{1,24}(?=\s|$)")
_NON_WORD_RE = re.compile(r"[\W_]+")
_WORD_RE = re.compile(r"[^\W_]")  # what _NON_WORD_RE keeps
_UNIT_RE = re.compile(rf"[{_CJK}]|[a-z0-9]+")
# Question structures no word list captures: A-not-A (好不好, 透不透, 发没发) and alternatives
# (是物理防晒还是化学防晒, 偏大还是偏小).
_STRUCTURE_RE = re.compile(
    rf"([{_CJK}])[不没]\1|是[{_CJK}a-z0-9]{{1,12}}还是|([{_CJK}])[{_CJK}]?还是\2"
)


def _norm(text: str, trad: dict[int, int]) -> str:
    return unicodedata.normalize("NFKC", text).casefold().translate(trad)


def _normalise(text: str, p: _Patterns) -> str:
    """``_norm(text, p.trad)``, skipping the steps that would leave the text unchanged."""
    if text.isascii() and not p.ascii_trad:
        return text.lower()  # NFKC leaves ASCII alone; casefold() is lower() on ASCII
    s = unicodedata.normalize("NFKC", text).casefold()
    return s.translate(p.trad) if p.trad_chars.search(s) else s


def _phrases(phrases: tuple[str, ...], trad: dict[int, int]) -> list[str]:
    """Normalised distinct phrases, longest first so 怎么这么 wins over 怎么."""
    items = {_norm(p, trad).strip() for p in phrases}
    items.discard("")
    return sorted(items, key=lambda p: (-len(p), p))


def _literal(p: str) -> str:
    """One escaped phrase; latin phrases are bounded as whole words ("ok" not inside "book").

    The left bound is tested after the first character (``o(?<![a-z0-9']o)k``, the same test as
    ``(?<![a-z0-9'])ok``), so every alternative starts with a literal and the regex engine skips
    to candidate characters instead of trying each branch at each position (~10x on mixed lists).
    """
    if p.isascii() and p[0].isalnum() and p[-1].isalnum():
        c = re.escape(p[0])
        return rf"{c}(?<![a-z0-9']{c}){re.escape(p[1:])}(?![a-z0-9'])"
    return re.escape(p)


def _alternation(phrases: tuple[str, ...], trad: dict[int, int]) -> str:
    """Alternation of the phrases in ``_phrases`` order; never matches if empty."""
    items = _phrases(phrases, trad)
    return "|".join(map(_literal, items)) if items else _NEVER


def _hint(phrases: tuple[str, ...], trad: dict[int, int]) -> str:
    """Unbounded alternation of the longest space-free piece of each phrase.

    Every match of the phrases contains one of these pieces, also in a text whose other words
    were replaced by spaces (that never joins characters into a new space-free run). A text
    holding none of the pieces cannot match, so a quick search for them can skip the real work.
    """
    pieces = {max(p.split(), key=len) for p in _phrases(phrases, trad)}
    return "|".join(map(re.escape, sorted(pieces))) if pieces else _NEVER


def _compile(cfg: DetectorConfig) -> _Patterns:
    pairs = wl.TRADITIONAL_PAIRS.split()
    trad = str.maketrans("".join(p[0] for p in pairs), "".join(p[1] for p in pairs))

    def alt(phrases: tuple[str, ...]) -> str:
        return _alternation(phrases, trad)

    clause_start = r"(?:^|[.!?,;:~]\s*|\s{2,})(?:(?:hi|hello|hey)\b[\s,]*)?"
    trad_keys = "".join(re.escape(chr(k)) for k in trad)
    return _Patterns(
        trad=trad,
        trad_chars=re.compile(f"[{trad_keys}]" if trad_keys else _NEVER),
        ascii_trad=any(k < 128 for k in trad),
        question_mark=re.compile(alt(cfg.question_marks)),
        interrogative=re.compile(alt(cfg.interrogatives)),
        # \w covers CJK, so "么么哒" and "呢喃" do not count as clause-final particles.
        particle=re.compile(rf"(?:{alt(cfg.particles)})(?!\w)"),
        request=re.compile(alt(cfg.request_cues)),
        en_interrogative=re.compile(rf"{clause_start}(?:{alt(cfg.english_interrogatives)})"),
        en_interrogative_hint=re.compile(_hint(cfg.english_interrogatives, trad)),
        en_cue=re.compile(alt(cfg.english_cues)),
        not_cue=re.compile(alt(cfg.not_cues)),
        rhetorical=re.compile(alt(cfg.rhetorical_cues)),
        promo=re.compile(alt(cfg.promo_cues)),
        exempt=re.compile(alt(cfg.exempt_phrases)),
        filler=re.compile(alt(cfg.fillers)),
        holding=re.compile(alt(cfg.holding_phrases)),
        holding_hint=re.compile(_hint(cfg.holding_phrases, trad)),
        ack=re.compile(alt(cfg.ack_phrases)),
        ack_needs_word=all(_WORD_RE.search(p) for p in _phrases(cfg.ack_phrases, trad)),
        enough_chars=re.compile(rf"(?:[\W_]*[^\W_]){{{max(cfg.min_chars, 0)}}}"),
    )


DEFAULT = DetectorConfig()

_MEDIA_ONLY = Detection(False, 0.0, "media_only")
_LINK_ONLY = Detection(False, 0.0, "link_only")
_EMOJI_ONLY = Detection(False, 0.0, "emoji_only")
_EMPTY = Detection(False, 0.0, "empty")
_EXEMPT = Detection(False, 0.0, "exempt")
_TOO_SHORT = Detection(False, 0.0, "too_short")


class _Text:
    """One message prepared once; the rule score its checks share is computed at most once."""

    __slots__ = ("_cfg", "_score", "body", "has_link", "has_word")

    def __init__(self, body: str, has_link: bool, cfg: DetectorConfig) -> None:
        self.body = body  # normalised text, mentions, codes and links removed
        self.has_link = has_link
        # Any letter, digit or CJK character: a search that stops at the first one, where
        # building the core (the body without the rest) would copy the whole text.
        self.has_word = _WORD_RE.search(body) is not None
        self._cfg = cfg
        self._score: tuple[float, str] | None = None

    def core_len(self) -> int:
        """Letters, digits and CJK characters in the body (needed for long texts only)."""
        return len(_NON_WORD_RE.sub("", self.body))

    def rule_score(self) -> tuple[float, str]:
        if self._score is None:
            self._score = _rule_score(self.body, self._cfg)
        return self._score


def _body(text: str, cfg: DetectorConfig) -> tuple[str, bool]:
    """Normalised text without CQ codes, @mentions and links; and whether it had a link."""
    if len(text) > cfg.long_text_chars:
        half = cfg.long_text_chars // 2
        text = f"{text[:half]} {text[-half:]}"
    s = _normalise(text, cfg.patterns)
    # Cheap membership tests skip regex passes that cannot match (most messages).
    if "[" in s:
        s = _CODE_RE.sub(" ", s)
    if "@" in s:
        s = _MENTION_RE.sub(" ", s)
    n_links = 0
    if "." in s or "/" in s or "¥" in s or "$" in s or "€" in s:
        s, n_links = _URL_RE.subn(" ", s)
    return s, n_links > 0


def _prepare(text: str, cfg: DetectorConfig) -> _Text:
    body, has_link = _body(text, cfg)
    return _Text(body, has_link, cfg)


def _units(text: str) -> int:
    """Size of leftover text: CJK characters plus latin/digit words."""
    return len(_UNIT_RE.findall(text))


def _residual(body: str, phrases: re.Pattern[str], p: _Patterns) -> int | None:
    """Units left after removing phrases and fillers, or None if no phrase matched."""
    rest, hits = phrases.subn(" ", body)
    if not hits:
        return None
    return _units(p.filler.sub(" ", rest))


def _has_structure(q: str) -> bool:
    # Each structure contains 不, 没 or 还是: three substring tests spare most regex scans.
    return ("不" in q or "没" in q or "还是" in q) and _STRUCTURE_RE.search(q) is not None


def _has_en_interrogative(q: str, p: _Patterns) -> bool:
    return (
        p.en_interrogative_hint.search(q) is not None and p.en_interrogative.search(q) is not None
    )


def _rule_score(body: str, cfg: DetectorConfig) -> tuple[float, str]:
    p = cfg.patterns
    # A word placeholder, not a space: it must not create a clause start for English cues.
    q = p.not_cue.sub("_", body)
    # Categories strongest first: the first one hit names the reason.
    hits: list[tuple[str, float]] = []
    if p.request.search(q) or p.en_cue.search(q):
        hits.append(("request", 0.85))
    if p.question_mark.search(q):
        hits.append(("question_mark", 0.8))
    if p.interrogative.search(q) or _has_structure(q) or _has_en_interrogative(q, p):
        hits.append(("interrogative", 0.75))
    if p.particle.search(q):
        hits.append(("particle", 0.7))
    if not hits:
        return 0.0, "none"
    reason, weight = hits[0]
    # Independent cues agreeing make the verdict surer.
    score = min(0.95, weight + 0.05 * (len(hits) - 1))
    if p.rhetorical.search(body):
        score -= cfg.rhetorical_penalty
        if score < cfg.threshold:
            reason = "rhetorical"
    return round(score, 3), reason


def _exempt(t: _Text, cfg: DetectorConfig) -> bool:
    """Exempt-phrase test for a message with words (``_is_exempt`` checks ``has_word``)."""
    limit = cfg.exempt_max_chars
    if len(t.body) > limit and t.core_len() > limit:  # the core is never longer than the body
        return False
    p = cfg.patterns
    left = _residual(t.body, p.exempt, p)
    if left is None:
        return False
    if left == 0:
        return True
    return left <= cfg.exempt_residual_max and t.rule_score()[0] < cfg.threshold


def _is_exempt(t: _Text, cfg: DetectorConfig) -> bool:
    return not t.has_word or _exempt(t, cfg)


def _is_ack(t: _Text, cfg: DetectorConfig) -> bool:
    p = cfg.patterns
    if not t.has_word and p.ack_needs_word:
        return False  # emoji/punctuation only: no ack phrase can match
    left = _residual(t.body, p.ack, p)
    if left is None or left > cfg.reply_residual_max:
        return False
    return t.rule_score()[0] < cfg.threshold


def _detect(
    t: _Text, text: str, exempt: bool, mentions_staff: bool, cfg: DetectorConfig
) -> Detection:
    """The cascade after the media check; ``exempt`` is ``_is_exempt(t, cfg)``."""
    if not t.has_word:
        if t.has_link:
            return _LINK_ONLY
        return _EMOJI_ONLY if text.strip() else _EMPTY
    if exempt:
        return _EXEMPT
    if mentions_staff:
        return Detection(True, cfg.mention_score, "mention_staff")
    score, reason = t.rule_score()
    promo_hits = len(set(cfg.patterns.promo.findall(t.body)))
    if promo_hits >= 2 or (promo_hits and t.has_link):
        return Detection(False, min(score, 0.1), "promo")
    if reason != "question_mark" and not cfg.patterns.enough_chars.match(t.body):
        return _TOO_SHORT
    return Detection(score >= cfg.threshold, score, reason)


def analyze(
    text: str,
    *,
    mentions_staff: bool = False,
    media_only: bool = False,
    cfg: DetectorConfig = DEFAULT,
) -> Analysis:
    """classify, is_acknowledgement and is_exempt of one customer message in a single pass."""
    t = _prepare(text, cfg)
    exempt = _is_exempt(t, cfg)
    detection = _MEDIA_ONLY if media_only else _detect(t, text, exempt, mentions_staff, cfg)
    return Analysis(detection, _is_ack(t, cfg), exempt)


def classify(
    text: str,
    *,
    mentions_staff: bool = False,
    media_only: bool = False,
    cfg: DetectorConfig = DEFAULT,
) -> Detection:
    """Decide whether one customer message opens a question (cascade in the module docstring)."""
    if media_only:
        return _MEDIA_ONLY
    t = _prepare(text, cfg)
    return _detect(t, text, _is_exempt(t, cfg), mentions_staff, cfg)


def is_exempt(text: str, cfg: DetectorConfig = DEFAULT) -> bool:
    """True for messages that never open a question: thanks/ok/greetings, emoji or links only."""
    return _is_exempt(_prepare(text, cfg), cfg)


def is_holding_reply(text: str, cfg: DetectorConfig = DEFAULT) -> bool:
    """True for a staff message that only says "wait, I'm checking" (稍等, 我查一下, hold on)."""
    p = cfg.patterns
    body, _ = _body(text, cfg)
    if not p.holding_hint.search(body):
        return False  # most staff replies: skip the two removal passes
    # Remove exempt words too: "收到，马上处理" is still only a holding reply.
    left = _residual(p.exempt.sub(" ", body), p.holding, p)
    return left is not None and left <= cfg.reply_residual_max


def is_acknowledgement(text: str, cfg: DetectorConfig = DEFAULT) -> bool:
    """True for a customer's thanks/ok after an answer (谢谢, 明白了, got it), not a question."""
    return _is_ack(_prepare(text, cfg), cfg)
