"""Tests for the customer-question detector (sop.detect)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sop.detect import (
    DEFAULT,
    Detection,
    DetectorConfig,
    classify,
    is_acknowledgement,
    is_exempt,
    is_holding_reply,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "group_messages_labelled.jsonl"


# --- cascade step 1: never opens ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("谢谢", "exempt"),
        ("好的 谢谢亲～", "exempt"),
        ("收到啦👌", "exempt"),
        ("嗯嗯", "exempt"),
        ("OK", "exempt"),
        ("ｏｋ了", "exempt"),
        ("哈哈哈哈", "exempt"),
        ("晚安 宝妈们", "exempt"),
        ("早上好", "exempt"),
        ("谢谢小美", "exempt"),
        ("謝謝！", "exempt"),
        ("Thank you so much!", "exempt"),
        ("ok got it", "exempt"),
        ("👍👍👍", "emoji_only"),
        ("🙏", "emoji_only"),
        ("[捂脸][捂脸]", "emoji_only"),
        ("？？", "emoji_only"),
        ("。。。", "emoji_only"),
        ("", "empty"),
        ("   ", "empty"),
        ("https://v.douyin.com/iRNBxyz/", "link_only"),
    ],
)
def test_exempt_and_empty_messages_never_open(text: str, reason: str) -> None:
    """Exempt phrases, emoji/punctuation-only and link-only messages never open a question."""
    assert classify(text) == Detection(False, 0.0, reason)


def test_media_only_never_opens_even_when_mentioning_staff() -> None:
    """A picture, voice note or sticker alone is attached to a burst, never opened on its own."""
    assert classify("[图片]", media_only=True, mentions_staff=True).reason == "media_only"
    assert not classify("", media_only=True).is_question


def test_exempt_beats_mention() -> None:
    """Thanking the guide by @mention does not open a question."""
    d = classify("@小美导购 谢谢小美", mentions_staff=True)
    assert d == Detection(False, 0.0, "exempt")


def test_exempt_phrase_with_a_question_is_not_exempt() -> None:
    """Thanks followed by a new question still opens one."""
    assert classify("好的 那几点发货").is_question
    assert classify("谢谢，还有个问题 3段怎么冲").is_question
    assert not is_exempt("好的几点")


# --- cascade step 2: @staff ----------------------------------------------------------------------


def test_mention_of_staff_opens_with_fixed_score() -> None:
    """@-ing an operator opens a question even without a question form."""
    d = classify("@小美导购 我已经把订单截图发你了", mentions_staff=True)
    assert d == Detection(True, 0.9, "mention_staff")
    assert not classify("@小美导购 我已经把订单截图发你了").is_question


# --- cascade step 3: rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("冲奶粉水温要多少度？", "question_mark"),
        ("这个是正品吗？？？", "question_mark"),
        ("奶粉可以用矿泉水冲吗", "interrogative"),
        ("3段奶粉几个月宝宝可以喝", "interrogative"),
        ("新人礼包怎么领取", "interrogative"),
        ("金装和皇家的区别是啥", "interrogative"),
        ("这条裤子透不透", "interrogative"),
        ("这款防晒是物理防晒还是化学防晒", "interrogative"),
        ("新款牛仔裤偏大还是偏小", "interrogative"),
        ("那退款呢", "request"),
        ("那我的赠品呢", "particle"),
        ("偏远地区包邮不", "particle"),
        ("宝宝六个月可以加辅食了没", "particle"),
        ("麻烦帮我查一下订单 20240512338871", "request"),
        ("请问会员生日礼怎么领", "request"),
        ("订单号7723019846 到现在没收到货", "request"),
        ("快递把罐子压坏了😡", "request"),
        ("我要投诉", "request"),
        ("小美在吗", "request"),
    ],
)
def test_rule_cues_open(text: str, reason: str) -> None:
    """Question marks, interrogatives, clause-final particles and request cues open a question."""
    d = classify(text)
    assert d.is_question
    assert d.reason == reason
    assert 0.7 <= d.score <= 0.95


@pytest.mark.parametrize(
    "text",
    [
        "How many scoops for 120ml water",
        "can I mix stage 1 and stage 2",
        "Hi, is this formula suitable for newborns",
        "Does this jacket run small?",
        "Please check my order 88230019, still not received",
        "The tin arrived dented, I want a refund",
        "any sugar free options",
    ],
)
def test_english_questions_open(text: str) -> None:
    """English interrogatives at a clause start and request cues open a question."""
    assert classify(text).is_question


@pytest.mark.parametrize(
    "text",
    [
        "我家宝宝今天终于会翻身了",
        "我也是用矿泉水冲的 没啥问题",
        "什么都不想干 只想躺着",
        "好几件都想要 纠结",
        "哪里哪里 我也是随便穿穿",
        "宝宝怎么这么能吃",
        "What a cute photo!",
        "How pretty is this color!",
        "I always get it with less ice",
        "1",
        "么么哒",
    ],
)
def test_plain_chatter_does_not_open(text: str) -> None:
    """Statements, and cue look-alikes (没啥, 好几, 怎么这么, what a), do not open a question."""
    assert not classify(text).is_question


@pytest.mark.parametrize(
    "text",
    [
        "这也太可爱了吧？",
        "不是吧？这么快就卖完了",
        "谁懂啊 带娃真的太累了",
        "who else is up at 3am lol",
    ],
)
def test_rhetorical_chatter_does_not_open(text: str) -> None:
    """Rhetorical markers (也太, 谁懂, 哈哈, lol) pull a question-mark message below threshold."""
    d = classify(text)
    assert not d.is_question
    assert d.reason in {"rhetorical", "none"}


def test_strong_request_survives_laughter() -> None:
    """A laugh does not cancel an explicit request."""
    assert classify("哈哈 请问几点直播").is_question


@pytest.mark.parametrize(
    "text",
    [
        "限时抢购！进口奶粉5折起 点击链接 https://t.cn/A6xYz9k",
        "帮我砍一刀吧 谢谢大家 https://p.pinduoduo.com/xKz2?share=1",
        "想要美白吗？点击链接👉 https://s.click.taobao.com/t?e=m%3D2",
        "宝妈兼职 在家带娃日赚200 有意的私聊我",
        "复制这段￥Ab12Cd34￥打开淘宝 领红包",
    ],
)
def test_customer_promotions_do_not_open(text: str) -> None:
    """Ads posted by customers (promo cue plus link, or two promo cues) never open a question."""
    d = classify(text)
    assert not d.is_question
    assert d.reason == "promo"


def test_promo_word_inside_a_real_question_still_opens() -> None:
    """One promo word without a link does not hide a question (扫码积分, 包邮吗)."""
    assert classify("扫码积分扫不了怎么办").is_question
    assert classify("生日当天有红包吗").is_question


def test_question_mark_inside_a_url_is_not_a_question() -> None:
    """A '?' in a link's query string is ignored; the text around the link decides."""
    assert not classify(
        "分享一个辅食食谱 https://www.xiaohongshu.com/explore/64ab?xsec=abc"
    ).is_question
    assert classify("https://m.tb.cn/h.5Xy?sm=1 这家店是正品吗").is_question


def test_full_width_and_traditional_forms() -> None:
    """Full-width punctuation/letters and traditional characters are normalised first."""
    assert classify("請問這款奶粉適合幾個月的寶寶").is_question
    assert classify("門市有現貨嗎").is_question
    assert classify("ＯＫ").reason == "exempt"
    assert classify("能退吗？").reason == classify("能退吗?").reason


def test_long_messages_scan_head_and_tail() -> None:
    """A long story with the ask at the end opens; a long story without one does not."""
    story = "今天带娃去打疫苗，回来哭了一路，晚上也睡不好，" * 40
    assert not classify(story).is_question
    assert classify(story + "想问一下这种情况正常吗").is_question
    assert classify("请问一下，" + story).is_question


def test_each_message_is_judged_alone() -> None:
    """classify is stateless: a burst's parts are judged one by one, same input same output."""
    burst = ["小美", "我昨天买的奶粉", "到现在还没发货"]
    first = [classify(t) for t in burst]
    assert [d.is_question for d in first] == [False, False, True]
    assert [classify(t) for t in burst] == first


# --- holding replies and acknowledgements ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("稍等", True),
        ("稍等，我帮您查一下", True),
        ("亲 稍等哈 我看看", True),
        ("收到，马上帮您处理", True),
        ("正在处理中，请稍候", True),
        ("Let me check, one moment please", True),
        ("hold on, checking your order", True),
        ("稍等，请问您的订单号是多少？", False),
        ("稍等，这款是适合0-6个月宝宝的，3段要一岁以上才能喝哦", False),
        ("亲 这个可以用的哦", False),
        ("好的", False),
        ("It ships tomorrow from our Shanghai warehouse by SF express", False),
    ],
)
def test_holding_reply(text: str, expected: bool) -> None:
    """Only a staff message that just says "wait, I'm checking" is a holding reply."""
    assert is_holding_reply(text) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("谢谢", True),
        ("好的 谢谢阿杰", True),
        ("明白了，谢谢老师", True),
        ("已经解决了 谢谢", True),
        ("可以了可以了", True),
        ("thanks, got it", True),
        ("ok thx", True),
        ("解决了吗？", False),
        ("好的，那几点发货？", False),
        ("谢谢，还有一个问题 3段怎么冲", False),
        ("奶粉怎么冲", False),
        ("thanks, but where is my refund", False),
    ],
)
def test_acknowledgement(text: str, expected: bool) -> None:
    """A customer's thanks/ok is an acknowledgement unless it carries a new question."""
    assert is_acknowledgement(text) is expected


# --- configuration -----------------------------------------------------------------------------


def test_with_extra_appends_to_a_word_list() -> None:
    """Extra phrases extend the defaults; the default config is unchanged."""
    cfg = DEFAULT.with_extra(request_cues=("售后",))
    assert cfg.request_cues[-1] == "售后"
    assert classify("奶粉售后", cfg=cfg).reason == "request"
    assert not classify("奶粉售后").is_question


def test_with_extra_rejects_unknown_or_non_list_fields() -> None:
    """Only word-list fields can be extended."""
    with pytest.raises(TypeError):
        DEFAULT.with_extra(threshold=("x",))
    with pytest.raises(TypeError):
        DEFAULT.with_extra(nope=("x",))


def test_with_overrides_replaces_fields() -> None:
    """Overrides replace lists and thresholds; empty lists are allowed."""
    strict = DEFAULT.with_overrides(threshold=0.8)
    assert classify("这条裤子透不透").is_question
    assert not classify("这条裤子透不透", cfg=strict).is_question
    no_exempt = DEFAULT.with_overrides(exempt_phrases=())
    assert classify("谢谢", cfg=no_exempt).reason == "none"
    assert not is_exempt("谢谢", no_exempt)


def test_config_value_semantics() -> None:
    """Configs compare and hash by their lists, not by compiled patterns."""
    assert DetectorConfig() == DEFAULT
    assert hash(DetectorConfig()) == hash(DEFAULT)
    assert DEFAULT.with_overrides(threshold=0.7) != DEFAULT


# --- quality gate on the labelled set ----------------------------------------------------------


def _load() -> list[dict[str, object]]:
    return [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line]


def _f1(rows: list[dict[str, object]]) -> float:
    tp = fp = fn = 0
    for r in rows:
        got = classify(
            str(r["text"]),
            mentions_staff=bool(r["mentions_staff"]),
            media_only=bool(r["media_only"]),
        ).is_question
        tp += got and bool(r["label"])
        fp += got and not r["label"]
        fn += (not got) and bool(r["label"])
    return 2 * tp / (2 * tp + fp + fn)


def test_labelled_set_is_well_formed() -> None:
    """The labelled set has >= 600 messages, all fields, and some English."""
    rows = _load()
    assert len(rows) >= 600
    keys = {"text", "mentions_staff", "media_only", "label", "kind"}
    assert all(set(r) == keys for r in rows)
    english = sum(1 for r in rows if str(r["text"]).isascii() and str(r["text"]).strip())
    assert english / len(rows) >= 0.1


def test_labelled_set_f1_at_least_0_90() -> None:
    """Detector F1 is >= 0.90 on the whole labelled set and on its held-out half."""
    rows = _load()
    assert _f1(rows) >= 0.90
    assert _f1(rows[1::2]) >= 0.90


# --- robustness --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=600),
    st.booleans(),
    st.booleans(),
)
def test_never_raises_on_arbitrary_text(text: str, mention: bool, media: bool) -> None:
    """All entry points accept any string and keep the score within 0..1."""
    d = classify(text, mentions_staff=mention, media_only=media)
    assert 0.0 <= d.score <= 1.0
    assert d.reason
    assert isinstance(is_exempt(text), bool)
    assert isinstance(is_holding_reply(text), bool)
    assert isinstance(is_acknowledgement(text), bool)
