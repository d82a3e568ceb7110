"""One scripted working day of group life, as pure data (no clock, no I/O).

``day_script(cast, day, seed=...)`` returns every action of one local day (Asia/Shanghai by
default) sorted by time: customers asking in Chinese (in bursts, more in the evening), chatter,
stickers and thanks; staff answering by quote, @mention, plain follow-up (proximity) or private
chat, sometimes after a holding reply, sometimes late or never; a recalled question, member
joins, friend adds to guides, guides' group posts and private chats. ``DayScript.questions``
records what each question was *meant* to get, so tests (and demos) can compare the bot's
detection and linking with the intended ground truth.

The same (seed, day, cast) always gives the same script: one ``random.Random`` per day, never
the global generator.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from bot.events import ChatType, Segment, SegmentType
from bot.gateway.simulator.cast import Brand, Cast, Customer, SimGroup, StaffMember

SHANGHAI = ZoneInfo("Asia/Shanghai")
# Relative chat volume by local hour: quiet at night, busy at lunch and in the evening.
HOUR_WEIGHTS = (
    1.0,
    0.5,
    0.2,
    0.1,
    0.1,
    0.2,
    0.6,
    1.5,
    2.5,
    4.0,
    5.0,
    5.0,
    4.0,
    4.0,
    4.5,
    4.5,
    4.0,
    4.0,
    5.0,
    7.0,
    9.0,
    8.0,
    5.0,
    2.5,
)
_MAX_ATTEMPTS = 40
_MIN_DAY_QUESTIONS = 24


class Behaviour(StrEnum):
    QUESTION = "question"  # the main message of a customer question
    QUESTION_EXTRA = "question_extra"  # "在吗" before it, details or a screenshot after it
    CHATTER = "chatter"
    STICKER = "sticker"
    THANKS = "thanks"
    HOLDING = "holding"  # "稍等，我查一下"
    ANSWER = "answer"
    WELCOME = "welcome"
    GUIDE_POST = "guide_post"
    GUIDE_PRIVATE = "guide_private"
    CUSTOMER_PRIVATE = "customer_private"
    RECALL = "recall"
    JOIN = "join"
    FRIEND_ADD = "friend_add"


class Outcome(StrEnum):
    """How a question is meant to be answered (the link a correct linker finds)."""

    QUOTE = "quote"
    MENTION = "mention"
    PROXIMITY = "proximity"
    PRIVATE = "private"
    UNANSWERED = "unanswered"
    WITHDRAWN = "withdrawn"


ANSWERED = frozenset({Outcome.QUOTE, Outcome.MENTION, Outcome.PROXIMITY, Outcome.PRIVATE})


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """A message as a platform would deliver it; the gateway derives text and fields from it."""

    message_id: str
    chat_type: ChatType
    chat_id: str
    sender_id: str
    sender_name: str
    segments: tuple[Segment, ...]
    reply_to_sender_id: str | None = None
    platform_role: str | None = None


@dataclass(frozen=True, slots=True)
class RecallSpec:
    chat_id: str
    message_id: str
    sender_id: str


@dataclass(frozen=True, slots=True)
class JoinSpec:
    chat_id: str
    user_id: str
    operator_id: str | None = None  # who invited, when someone did


@dataclass(frozen=True, slots=True)
class FriendAddSpec:
    user_id: str  # the customer
    staff_user_id: str  # the guide whose account they added


Action = MessageSpec | RecallSpec | JoinSpec | FriendAddSpec


@dataclass(frozen=True, slots=True)
class ScheduledAction:
    at: datetime  # aware UTC
    seq: int  # generation order; breaks ties between equal times
    behaviour: Behaviour
    action: Action
    question_id: str | None = None


@dataclass(frozen=True, slots=True)
class QuestionPlan:
    """Ground truth for one customer question."""

    question_id: str
    group_id: str
    asker_id: str
    opened_at: datetime
    message_ids: tuple[str, ...]
    outcome: Outcome
    responder_id: str | None = None  # platform user id of the staff member who answers
    first_response_at: datetime | None = None  # holding reply or answer
    answered_at: datetime | None = None
    holding: bool = False
    late: bool = False  # answered after hours or more than an hour later
    thanked: bool = False


@dataclass(frozen=True, slots=True)
class DayScript:
    day: date
    actions: tuple[ScheduledAction, ...]
    questions: tuple[QuestionPlan, ...]

    def count(self, behaviour: Behaviour) -> int:
        return sum(1 for a in self.actions if a.behaviour is behaviour)

    def outcomes(self) -> Counter[Outcome]:
        return Counter(q.outcome for q in self.questions)

    def missing(self) -> list[str]:
        """Behaviours the demo promises that this day lacks (empty for a complete day)."""
        have = {a.behaviour for a in self.actions}
        out = [str(b) for b in _REQUIRED_BEHAVIOURS if b not in have]
        out += [str(o) for o in Outcome if o not in self.outcomes()]
        if not any(q.late and q.outcome in ANSWERED for q in self.questions):
            out.append("late answer")
        if not any(len(q.message_ids) > 1 for q in self.questions):
            out.append("burst")
        return out


_REQUIRED_BEHAVIOURS = tuple(Behaviour)


def day_script(cast: Cast, day: date, *, seed: int, tz: ZoneInfo = SHANGHAI) -> DayScript:
    """The script of local ``day``; deterministic in (cast, day, seed).

    Draws are retried with derived seeds until the day shows every behaviour, so a demo day is
    never missing, say, its proximity answer; a cast too small for that gets its last attempt.
    Customers and staff speak Chinese: this is what the bot reads, not text it shows.
    """
    script = _DayBuilder(cast, day, seed, 0, tz).build()
    for attempt in range(1, _MAX_ATTEMPTS):
        if not script.missing():
            break
        script = _DayBuilder(cast, day, seed, attempt, tz).build()
    return script


# -- phrase book (customers speak Chinese; texts are plausible, not real brand claims) ------


@dataclass(frozen=True, slots=True)
class Topic:
    questions: tuple[str, ...]
    answers: tuple[str, ...]


_FORMULA_TOPICS = (
    Topic(
        (
            "宝宝8个月了 现在喝的2段 什么时候换3段呀？",
            "转奶要怎么转？一下子换会不会不适应",
            "1段和2段可以混着喝吗？",
        ),
        (
            "满12个月再换3段就可以～转奶建议新旧按比例混合，7到10天慢慢过渡",
            "不建议混着喝哦，按月龄选段数，转段时新旧奶粉逐步替换就好",
        ),
    ),
    Topic(
        ("冲奶粉的水温多少度合适？", "一勺奶粉兑多少毫升水呀？", "冲好的奶放了两个小时还能喝吗？"),
        (
            "水温40-50度就可以，先加水再加粉哦",
            "每平勺配30ml温水，量勺要刮平～",
            "冲好的奶建议1小时内喝完，放久了就不要再给宝宝喝了",
        ),
    ),
    Topic(
        ("宝宝喝了三天有点便秘 正常吗？", "换奶之后便便发绿是怎么回事？", "喝完总吐奶怎么办？"),
        (
            "转奶初期大便有变化比较常见，可以放慢转奶节奏多观察；持续三天以上建议咨询医生哦",
            "少量多次喂，喂完竖抱拍嗝15分钟，吐奶会好很多",
        ),
    ),
    Topic(
        ("罐底的溯源码怎么查真伪？", "刮开的防伪码扫不出来怎么办？"),
        ("扫罐底二维码进官方小程序就能查～扫不出来把罐底照片发我，我帮您查",),
    ),
    Topic(
        ("积分怎么兑换奶粉券？", "这个月的会员日是几号？", "新人礼包在哪里领？"),
        (
            "会员小程序-积分商城里就能兑换～本月会员日是25号哦",
            "新人礼包在小程序首页领取，记得先注册会员",
        ),
    ),
    Topic(
        ("收到的罐子瘪了一块 能换吗？", "奶粉里有结块 是不是受潮了？"),
        ("非常抱歉！麻烦拍下罐子和快递单，我马上帮您申请换新", "辛苦您拍个照片，我们给您登记换货"),
    ),
)
_FASHION_TOPICS = (
    Topic(
        ("身高165体重110斤穿M还是L？", "这条裤子偏大还是偏小？", "小个子穿这件会不会太长？"),
        ("这个身材建议穿M码，版型是宽松款～", "这款偏小半码，建议拍大一码哦"),
    ),
    Topic(
        ("不合适能退吗？吊牌剪了还能换吗？", "线上买的可以去门店换吗？"),
        ("7天内吊牌完好都可以退换～线上订单也可以到门店换码哦",),
    ),
    Topic(
        ("这件卫衣会起球吗？", "能机洗吗？会不会缩水"),
        ("这款是棉混纺的，建议反面冷水洗，不会明显缩水～",),
    ),
    Topic(
        ("{store}还有黑色S码吗？", "门店有这款羽绒服吗？想去试试"),
        ("帮您看了，门店还有2件，可以帮您留到晚上8点～", "有的，周末到店报我名字就行"),
    ),
)
_COMMON_TOPICS = (
    Topic(
        ("我前天下的单怎么还没发货？", "快递三天没更新了 怎么回事？", "能改收货地址吗？"),
        ("帮您查了，仓库今天已经发出，单号稍后发您～", "地址已经帮您改好啦"),
    ),
    Topic(
        ("退款什么时候到账？", "申请退款好几天了怎么还没处理？"),
        ("退款已经审核通过，1-3个工作日原路退回哦",),
    ),
    Topic(("可以开电子发票吗？",), ("可以的，订单详情里点申请开票就行～",)),
)


def topics_for(brand: Brand) -> tuple[Topic, ...]:
    own = _FORMULA_TOPICS if brand is Brand.FORMULA else _FASHION_TOPICS
    return own + _COMMON_TOPICS


# Customer-looking text with markup, so escaping downstream gets exercised every day.
ESCAPE_CHATTER = "<script>alert(1)</script> 测试一下哈哈"
ESCAPE_QUESTION = {
    Brand.FORMULA: "说明书上写 &lt;3岁 用1段，那<b>满1岁</b>以后喝哪段？",
    Brand.FASHION: "尺码表写着 身高&lt;160cm 穿S，<b>158</b>的穿S可以吗？",
}
HELLO = ("在吗", "有人在吗", "请问一下")
BURST_EXTRAS = ("急", "在线等", "订单号尾号{n}", "就是上周在旗舰店买的", "麻烦看一下", "[截图]")
HOLDING = ("稍等，我查一下", "稍等哈，我帮您问一下", "收到，我看下马上回复您", "稍等，我确认一下")
THANKS = ("谢谢", "好的谢谢", "收到 谢谢亲", "明白了，谢谢🙏", "好的好的 感谢")
PRIVATE_ANSWER = "您好，您在群里问的问题我私信回复您：{answer}"
CHATTER = {
    Brand.FORMULA: (
        "早上好呀各位宝妈",
        "今天宝宝终于睡了个整觉",
        "我家也是喝的这个 挺好的",
        "哈哈哈哈 太真实了",
        "打卡 第15天",
        "刚下单了两罐 凑了个满减",
        "带娃好累 但是好开心",
        "晚安 宝妈们",
        "今天的直播挺有用的",
        "宝宝长了两颗牙了",
    ),
    Brand.FASHION: (
        "这件卫衣我也买了 很舒服",
        "今天穿了新买的裙子 被同事夸了",
        "哈哈 钱包又空了",
        "上次买的牛仔裤很显瘦",
        "周末去门店逛了一圈",
        "这个颜色好好看",
        "早上好",
    ),
}
FACE_IDS = (14, 21, 76, 178, 212, 277, 318)
JOINER_NICKS = ("新来的宝妈", "阳光小屋", "Echo", "安静的鱼", "兜兜妈", "晨曦")
NEWCOMER = ("大家好 新人报到", "新人报到 宝宝5个月", "大家好呀")
WELCOME = {
    Brand.FORMULA: "欢迎新朋友加入～喂养问题随时@我哦",
    Brand.FASHION: "欢迎加入会员群～新品和福利都会第一时间发在群里",
}
LIVESTREAM_POST = "今晚8点直播间抽奖，记得准时来哦～"
GUIDE_POSTS = {
    Brand.FORMULA: (
        "早安各位宝妈☀️ 今天也要元气满满",
        "【育儿小课堂】辅食添加的3个小原则，大家可以收藏一下",
        "本周会员日积分翻倍，别错过哦～",
    ),
    Brand.FASHION: (
        "【上新】春季新款卫衣到店啦，{store}欢迎试穿～",
        "今日穿搭分享：卫衣+阔腿裤，显高又舒服",
        "会员专享：到店出示会员码享9折",
    ),
}
GUIDE_PRIVATE = (
    "您好～我是{store}的导购{name}，新款到店了，有空来试试",
    "亲，上次您看的那款补货了，需要帮您留吗",
    "您好，最近穿着还合适吗？有问题随时找我",
)
PRIVATE_REPLIES = ("好的 谢谢", "周末过去看看", "收到～")
FRIEND_GREETING = "您好，我是{store}的导购{name}，以后有需要随时找我～"


# -- segments -----------------------------------------------------------------------------


def text_segments(text: str) -> tuple[Segment, ...]:
    return (Segment(SegmentType.TEXT, {"text": text}),)


def mention_segments(user_id: str, name: str, text: str) -> tuple[Segment, ...]:
    return (
        Segment(SegmentType.MENTION, {"user_id": user_id, "name": name}),
        Segment(SegmentType.TEXT, {"text": " " + text}),
    )


def quote_segments(
    message_id: str, author_id: str, author_name: str, text: str, *, auto_at: bool
) -> tuple[Segment, ...]:
    """A quote (引用); QQ clients add an implicit @ of the quoted author right after it."""
    segs = [Segment(SegmentType.REPLY, {"message_id": message_id})]
    if auto_at:
        data = {"user_id": author_id, "name": author_name, "implicit": "true"}
        segs.append(Segment(SegmentType.MENTION, data))
    segs.append(Segment(SegmentType.TEXT, {"text": text}))
    return tuple(segs)


# -- the builder --------------------------------------------------------------------------


@dataclass(slots=True)
class _Episode:
    open_at: datetime
    close_at: datetime | None  # first response or recall; None = stays open all day
    asker_id: str


@dataclass(slots=True)
class _GroupState:
    group: SimGroup
    episodes: list[_Episode] = field(default_factory=list)

    def open_at(self, t: datetime) -> list[_Episode]:
        return [
            e for e in self.episodes if e.open_at <= t and (e.close_at is None or t < e.close_at)
        ]


@dataclass(frozen=True, slots=True)
class _Answer:
    outcome: Outcome
    holding_at: datetime | None = None
    answer_at: datetime | None = None
    late: bool = False


@dataclass(frozen=True, slots=True)
class _Asked:
    qid: str
    group: SimGroup
    asker: Customer
    topic: Topic
    opened_at: datetime
    last_at: datetime
    main_id: str
    message_ids: tuple[str, ...]

    def plan(self, outcome: Outcome) -> QuestionPlan:
        return QuestionPlan(
            self.qid, self.group.id, self.asker.user_id, self.opened_at, self.message_ids, outcome
        )


class _DayBuilder:
    def __init__(self, cast: Cast, day: date, seed: int, attempt: int, tz: ZoneInfo) -> None:
        self.cast, self.day, self.tz = cast, day, tz
        self.rng = random.Random(f"sopbot-sim:{seed}:{day.isoformat()}:{attempt}")
        self.start = datetime.combine(day, time(0), tz).astimezone(UTC)
        self.end = datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(UTC)
        self.actions: list[ScheduledAction] = []
        self.questions: list[QuestionPlan] = []
        self.states = [_GroupState(g) for g in cast.sim_groups]
        self._msg_n = 0
        self._q_n = 0
        self._used_joiner_ids: set[str] = set()

    # -- time helpers

    def local(self, hour: float) -> datetime:
        """UTC instant of local ``hour`` (fractional) on this day."""
        return self.start + timedelta(hours=hour)

    def hour_of(self, t: datetime) -> float:
        return (t - self.start).total_seconds() / 3600

    def sample_time(self, lo: float = 0, hi: float = 24) -> datetime:
        hours = [h for h in range(24) if h + 1 > lo and h < hi]
        h = self.rng.choices(hours, weights=[HOUR_WEIGHTS[h] for h in hours])[0]
        start, stop = max(float(h), lo), min(h + 1.0, hi)
        return self.local(self.rng.uniform(start, stop))

    def later(self, t: datetime, lo_s: float, hi_s: float) -> datetime:
        return t + timedelta(seconds=round(self.rng.uniform(lo_s, hi_s)))

    def fits(self, t: datetime) -> bool:
        return t < self.end - timedelta(minutes=1)

    # -- emitting

    def next_id(self) -> str:
        self._msg_n += 1
        return f"{self.day:%Y%m%d}{self._msg_n:06d}"

    def emit(
        self, at: datetime, behaviour: Behaviour, action: Action, question_id: str | None = None
    ) -> None:
        self.actions.append(ScheduledAction(at, len(self.actions), behaviour, action, question_id))

    def say(
        self,
        at: datetime,
        behaviour: Behaviour,
        chat_id: str,
        sender_id: str,
        sender_name: str,
        segments: tuple[Segment, ...],
        *,
        private: bool = False,
        role: str | None = None,
        reply_to_sender_id: str | None = None,
        question_id: str | None = None,
    ) -> str:
        message_id = self.next_id()
        spec = MessageSpec(
            message_id=message_id,
            chat_type=ChatType.PRIVATE if private else ChatType.GROUP,
            chat_id=chat_id,
            sender_id=sender_id,
            sender_name=sender_name,
            segments=segments,
            reply_to_sender_id=reply_to_sender_id,
            platform_role=None if private else role,
        )
        self.emit(at, behaviour, spec, question_id)
        return message_id

    def staff_say(
        self,
        at: datetime,
        behaviour: Behaviour,
        group: SimGroup,
        who: StaffMember,
        segments: tuple[Segment, ...],
        *,
        reply_to_sender_id: str | None = None,
        question_id: str | None = None,
    ) -> str:
        role = "owner" if who.id in group.owners else "admin"
        return self.say(
            at,
            behaviour,
            group.id,
            who.user_id,
            who.card,
            segments,
            role=role,
            reply_to_sender_id=reply_to_sender_id,
            question_id=question_id,
        )

    def media(self) -> tuple[Segment, ...]:
        if self.rng.random() < 0.6:
            return (Segment(SegmentType.FACE, {"id": str(self.rng.choice(FACE_IDS))}),)
        name = f"{self.rng.getrandbits(64):016x}.jpg"
        return (Segment(SegmentType.IMAGE, {"file": name, "summary": "[图片]"}),)

    # -- the day

    def build(self) -> DayScript:
        withdrawn_group = self.rng.randrange(len(self.states))
        escape_group = 0
        for i, state in enumerate(self.states):
            self.group_questions(state, withdraw=i == withdrawn_group, escape=i == escape_group)
        for state in self.states:
            self.group_chatter(state, escape=state is self.states[escape_group])
        self.joins()
        self.guide_posts()
        self.guide_privates()
        self.friend_adds()
        actions = tuple(sorted(self.actions, key=lambda a: (a.at, a.seq)))
        return DayScript(self.day, actions, tuple(self.questions))

    def question_times(self, n: int) -> list[datetime]:
        times = sorted(self.sample_time() for _ in range(n))
        out: list[datetime] = []
        for drawn in times:
            # At least 4 minutes apart in one group, so bursts never merge two questions.
            t = drawn
            if out and t - out[-1] < timedelta(minutes=4):
                t = self.later(out[-1], 240, 420)
            if t < self.end - timedelta(minutes=10):
                out.append(t)
        return out

    def group_questions(self, state: _GroupState, *, withdraw: bool, escape: bool) -> None:
        group = state.group
        # Enough questions a day that even a one-group demo shows every way of answering.
        floor = max(6, -(-_MIN_DAY_QUESTIONS // len(self.states)))
        n = max(floor, min(150, round(len(group.customers) * 0.6)))
        times = self.question_times(n)
        in_hours = [i for i, t in enumerate(times[:-1]) if 10 <= self.hour_of(t) < 17]
        withdraw_i = self.rng.choice(in_hours) if withdraw and in_hours else -1
        escape_i = self.rng.randrange(len(times)) if escape and times else -1
        for i, t in enumerate(times):
            next_open = times[i + 1] if i + 1 < len(times) else None
            self.question(state, t, next_open, withdraw=i == withdraw_i, escape=i == escape_i)

    def pick_asker(self, state: _GroupState, t: datetime) -> Customer:
        busy = {e.asker_id for e in state.open_at(t)}
        for _ in range(6):
            c = self.rng.choice(state.group.customers)
            if c.user_id not in busy:
                return c
        return c

    def question(
        self,
        state: _GroupState,
        t: datetime,
        next_open: datetime | None,
        *,
        withdraw: bool,
        escape: bool,
    ) -> None:
        asked = self.ask(state, t, burst=not withdraw, escape=escape)
        group, asker = state.group, asked.asker
        if withdraw:
            recall_at = self.later(asked.last_at, 20, 100)
            recall = RecallSpec(group.id, asked.main_id, asker.user_id)
            self.emit(recall_at, Behaviour.RECALL, recall, asked.qid)
            state.episodes.append(_Episode(t, recall_at, asker.user_id))
            self.questions.append(asked.plan(Outcome.WITHDRAWN))
            return
        plan = self.plan_answer(asked.last_at)
        if plan.outcome is Outcome.PROXIMITY and not self.proximity_ok(state, plan, next_open):
            plan = _Answer(Outcome.QUOTE, plan.holding_at, plan.answer_at, plan.late)
        first = plan.holding_at or plan.answer_at
        state.episodes.append(_Episode(t, first, asker.user_id))
        if plan.outcome not in ANSWERED or plan.answer_at is None:
            self.questions.append(asked.plan(Outcome.UNANSWERED))
            return
        who = self.pick_responder(group, plan)
        if plan.holding_at is not None:
            self.respond(asked, plan, who, plan.holding_at, Behaviour.HOLDING)
        self.respond(asked, plan, who, plan.answer_at, Behaviour.ANSWER)
        thanks_at = self.later(plan.answer_at, 40, 600)
        thanked = self.rng.random() < 0.5 and self.fits(thanks_at)
        if thanked:
            private = plan.outcome is Outcome.PRIVATE
            chat = asker.user_id if private else group.id
            segs = text_segments(self.rng.choice(THANKS))
            self.say(
                thanks_at,
                Behaviour.THANKS,
                chat,
                asker.user_id,
                asker.nickname,
                segs,
                private=private,
                role="member",
                question_id=asked.qid,
            )
        self.questions.append(
            replace(
                asked.plan(plan.outcome),
                responder_id=who.user_id,
                first_response_at=first,
                answered_at=plan.answer_at,
                holding=plan.holding_at is not None,
                late=plan.late,
                thanked=thanked,
            )
        )

    def ask(self, state: _GroupState, t: datetime, *, burst: bool, escape: bool) -> _Asked:
        """The customer's messages: maybe "在吗" first, the question, maybe details after."""
        group, rng = state.group, self.rng
        self._q_n += 1
        qid = f"q-{self.day:%Y%m%d}-{self._q_n:04d}"
        asker = self.pick_asker(state, t)
        topic = rng.choice(topics_for(group.brand))
        text = rng.choice(topic.questions).format(store=group.store or "门店")
        if escape:
            text = ESCAPE_QUESTION[group.brand]

        def send(at: datetime, behaviour: Behaviour, segs: tuple[Segment, ...]) -> str:
            return self.say(
                at,
                behaviour,
                group.id,
                asker.user_id,
                asker.nickname,
                segs,
                role="member",
                question_id=qid,
            )

        ids: list[str] = []
        at = t
        if burst and rng.random() < 0.15:
            ids.append(send(at, Behaviour.QUESTION_EXTRA, text_segments(rng.choice(HELLO))))
            at = self.later(at, 8, 40)
        main_id = send(at, Behaviour.QUESTION, text_segments(text))
        ids.append(main_id)
        if burst and rng.random() < 0.35:
            for _ in range(rng.randint(1, 2)):
                at = self.later(at, 15, 90)
                extra = rng.choice(BURST_EXTRAS).format(n=rng.randint(1000, 9999))
                segs = self.media() if extra == "[截图]" else text_segments(extra)
                ids.append(send(at, Behaviour.QUESTION_EXTRA, segs))
        return _Asked(qid, group, asker, topic, t, at, main_id, tuple(ids))

    def respond(
        self, asked: _Asked, plan: _Answer, who: StaffMember, at: datetime, behaviour: Behaviour
    ) -> None:
        """A holding reply or the answer, shaped by how the question is meant to be linked."""
        rng, asker, qid = self.rng, asked.asker, asked.qid
        if behaviour is Behaviour.HOLDING:
            body = rng.choice(HOLDING)
        else:
            body = rng.choice(asked.topic.answers)
        if plan.outcome is Outcome.PRIVATE:
            segs = text_segments(PRIVATE_ANSWER.format(answer=body))
            self.say(
                at,
                behaviour,
                asker.user_id,
                who.user_id,
                who.card,
                segs,
                private=True,
                question_id=qid,
            )
            return
        reply_sender = None
        if plan.outcome is Outcome.QUOTE:
            segs = quote_segments(
                asked.main_id, asker.user_id, asker.nickname, body, auto_at=rng.random() < 0.8
            )
            reply_sender = asker.user_id
        elif plan.outcome is Outcome.MENTION:
            segs = mention_segments(asker.user_id, asker.nickname, body)
        else:
            segs = text_segments(body)
        self.staff_say(
            at, behaviour, asked.group, who, segs, reply_to_sender_id=reply_sender, question_id=qid
        )

    def plan_answer(self, last_msg: datetime) -> _Answer:
        """When and how staff respond, by the local hour the customer finished asking."""
        rng, h = self.rng, self.hour_of(last_msg)
        either = Outcome.QUOTE if rng.random() < 0.65 else Outcome.MENTION
        if h < 8.5:  # overnight: answered when the team comes in
            at = self.local(9) + timedelta(minutes=rng.uniform(2, 45))
            return _Answer(either, answer_at=at, late=True)
        if h >= 21:  # after hours: someone on duty late, or nobody until tomorrow
            at = self.later(last_msg, 600, 3600)
            if h >= 23 or rng.random() < 0.45 or not self.fits(at):
                return _Answer(Outcome.UNANSWERED)
            return _Answer(either, answer_at=at, late=True)
        r = rng.random()
        if r < 0.06:
            return _Answer(Outcome.UNANSWERED)
        if r < 0.14:  # busy day: answered hours later
            at = self.later(last_msg, 2 * 3600, 5 * 3600)
            if not self.fits(at):
                return _Answer(Outcome.UNANSWERED)
            return _Answer(either, answer_at=at, late=True)
        outcome = rng.choices(
            (Outcome.QUOTE, Outcome.MENTION, Outcome.PROXIMITY, Outcome.PRIVATE),
            weights=(0.36, 0.27, 0.28, 0.09),
        )[0]
        if 12 <= h < 13.5 and rng.random() < 0.5:  # lunch break
            at = self.local(13.5) + timedelta(minutes=rng.uniform(1, 20))
        elif rng.random() < 0.7:
            at = self.later(last_msg, 30, 360)
        else:
            at = self.later(last_msg, 360, 1500)
        holding_at = None
        if outcome is not Outcome.PRIVATE and rng.random() < 0.25:
            holding_at = self.later(last_msg, 30, 120)
            # Most follow up within 15 minutes; some forget (a follow-up breach).
            at = (
                self.later(holding_at, 180, 720)
                if rng.random() < 0.75
                else (self.later(holding_at, 960, 2100))
            )
        if not self.fits(at):
            return _Answer(Outcome.UNANSWERED)
        return _Answer(outcome, holding_at, at, late=at - last_msg > timedelta(hours=1))

    def proximity_ok(self, state: _GroupState, plan: _Answer, next_open: datetime | None) -> bool:
        """A plain follow-up links unambiguously only while its question is the only open one."""
        first, last = plan.holding_at or plan.answer_at, plan.answer_at
        assert first is not None
        assert last is not None
        if next_open is not None and next_open <= last + timedelta(seconds=30):
            return False
        return all(e.close_at is not None and e.close_at < first for e in state.episodes)

    def pick_responder(self, group: SimGroup, plan: _Answer) -> StaffMember:
        rng, cast = self.rng, self.cast
        owner = cast.member(group.owners[0])
        assert plan.answer_at is not None
        h = self.hour_of(plan.answer_at)
        if h < 9.8 or h >= 21:  # off hours: the owner on duty
            return owner
        if plan.outcome is Outcome.PRIVATE:
            return rng.choice(cast.guides) if group.brand is Brand.FASHION else owner
        r = rng.random()
        if group.brand is Brand.FORMULA:
            if r < 0.55:
                return owner
            if r < 0.85:
                return rng.choice(cast.by_role("specialist"))
            if r < 0.95:
                return rng.choice(cast.by_role("operator"))
            return cast.by_role("supervisor")[0]
        if r < 0.6:
            return owner
        if r < 0.9:
            return rng.choice(cast.guides)
        return rng.choice(cast.by_role("operator"))

    # -- everything that is not a question

    def group_chatter(self, state: _GroupState, *, escape: bool) -> None:
        group, rng = state.group, self.rng
        n = max(4, min(300, len(group.customers) * 2))
        pool = CHATTER[group.brand]
        for i in range(n):
            who = rng.choice(group.customers)
            at = self.sample_time()
            text = ESCAPE_CHATTER if escape and i == 0 else rng.choice(pool)
            self.say(
                at,
                Behaviour.CHATTER,
                group.id,
                who.user_id,
                who.nickname,
                text_segments(text),
                role="member",
            )
            for _ in range(rng.choice((0, 0, 0, 1, 2))):  # bursts of 2-3 messages
                at = self.later(at, 8, 60)
                if rng.random() < 0.4:
                    self.say(
                        at,
                        Behaviour.STICKER,
                        group.id,
                        who.user_id,
                        who.nickname,
                        self.media(),
                        role="member",
                    )
                else:
                    self.say(
                        at,
                        Behaviour.CHATTER,
                        group.id,
                        who.user_id,
                        who.nickname,
                        text_segments(rng.choice(pool)),
                        role="member",
                    )
        for _ in range(max(2, n // 4)):
            who = rng.choice(group.customers)
            self.say(
                self.sample_time(),
                Behaviour.STICKER,
                group.id,
                who.user_id,
                who.nickname,
                self.media(),
                role="member",
            )

    def quiet_time(self, state: _GroupState, lo: float, hi: float) -> datetime:
        """A time no question is open in the group, so a staff post is not taken for an answer."""
        for _ in range(12):
            t = self.sample_time(lo, hi)
            if not state.open_at(t) and not state.open_at(t + timedelta(minutes=10)):
                return t
        return t

    def joins(self) -> None:
        rng = self.rng
        for _ in range(max(1, len(self.states) // 3) + rng.randint(0, 1)):
            state = rng.choice(self.states)
            group = state.group
            owner = self.cast.member(group.owners[0])
            user_id = self.joiner_id()
            nick = rng.choice(JOINER_NICKS)
            at = self.quiet_time(state, 10, 21)
            invited_by = owner.user_id if rng.random() < 0.5 else None
            self.emit(at, Behaviour.JOIN, JoinSpec(group.id, user_id, invited_by))
            hello_at = self.later(at, 30, 150)
            self.say(
                hello_at,
                Behaviour.CHATTER,
                group.id,
                user_id,
                nick,
                text_segments(rng.choice(NEWCOMER)),
                role="member",
            )
            welcome = WELCOME[group.brand]
            self.staff_say(
                self.later(hello_at, 30, 240),
                Behaviour.WELCOME,
                group,
                owner,
                mention_segments(user_id, nick, welcome),
            )

    def joiner_id(self) -> str:
        taken = self.cast.staff_user_ids() | self._used_joiner_ids
        while True:
            uid = str(self.rng.randint(4_000_000_000, 4_999_999_999))
            if uid not in taken:
                self._used_joiner_ids.add(uid)
                return uid

    def guide_posts(self) -> None:
        rng, guides = self.rng, self.cast.guides
        slacker = rng.randrange(len(guides))  # one guide posts in only two groups today
        mention_all_done = False
        for i, guide in enumerate(guides):
            states = sorted(
                self.states,
                key=lambda s: (
                    guide.id not in s.group.owners,
                    s.group.brand is not Brand.FASHION,
                    rng.random(),
                ),
            )
            for state in states[: 2 if i == slacker else 3]:
                group = state.group
                text = rng.choice(GUIDE_POSTS[group.brand]).format(store=guide.store)
                at = self.quiet_time(state, 9.5, 21)
                if not mention_all_done:
                    mention_all_done = True
                    segs: tuple[Segment, ...] = (
                        Segment(SegmentType.MENTION_ALL, {}),
                        Segment(SegmentType.TEXT, {"text": " " + LIVESTREAM_POST}),
                    )
                else:
                    segs = text_segments(text)
                self.staff_say(at, Behaviour.GUIDE_POST, group, guide, segs)

    def all_customers(self) -> list[Customer]:
        return [c for s in self.states for c in s.group.customers]

    def guide_privates(self) -> None:
        rng, customers = self.rng, self.all_customers()
        slacker = rng.randrange(len(self.cast.guides))
        for i, guide in enumerate(self.cast.guides):
            n = rng.randint(1, 2) if i == slacker else 3
            for c in rng.sample(customers, min(n, len(customers))):
                at = self.sample_time(10, 21.5)
                text = rng.choice(GUIDE_PRIVATE).format(store=guide.store, name=guide.name)
                self.say(
                    at,
                    Behaviour.GUIDE_PRIVATE,
                    c.user_id,
                    guide.user_id,
                    guide.card,
                    text_segments(text),
                    private=True,
                )
                reply_at = self.later(at, 60, 1800)
                if rng.random() < 0.4 and self.fits(reply_at):
                    self.say(
                        reply_at,
                        Behaviour.CUSTOMER_PRIVATE,
                        c.user_id,
                        c.user_id,
                        c.nickname,
                        text_segments(rng.choice(PRIVATE_REPLIES)),
                        private=True,
                    )

    def friend_adds(self) -> None:
        rng, customers = self.rng, self.all_customers()
        for _ in range(max(1, len(self.cast.guides) // 3)):
            guide = rng.choice(self.cast.guides)
            c = rng.choice(customers)
            # Adds peak around 20:00 (reference cases: the best hour to add contacts).
            at = self.local(min(22.5, max(9.0, rng.gauss(20, 0.8))))
            self.emit(at, Behaviour.FRIEND_ADD, FriendAddSpec(c.user_id, guide.user_id))
            text = FRIEND_GREETING.format(store=guide.store, name=guide.name)
            self.say(
                self.later(at, 60, 600),
                Behaviour.GUIDE_PRIVATE,
                c.user_id,
                guide.user_id,
                guide.card,
                text_segments(text),
                private=True,
            )
