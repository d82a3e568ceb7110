"""The simulator's people and groups: a deterministic demo cast for ``sopbot demo``.

Two brands share one operations team, like the reference cases: infant-formula customer groups
(Friso-style 宝妈交流群, run by group operators with HQ specialists answering) and fashion store
groups (Kuaiyu-style, run by shopping guides doing their 3+3+3). Every staff member has a
simulated platform user id (QQ-like digits); ``Cast.operators()`` and ``Cast.groups()`` turn the
cast into the same roster config a real deployment writes by hand.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from bot.config import GroupConfig, OperatorConfig, Role

PLATFORM = "simulator"

_SURNAMES = "林陈王李张刘周吴赵孙黄郑何许徐马胡朱高罗"
_GIVEN = (
    "悦",
    "静",
    "敏",
    "婷",
    "晓",
    "琳",
    "洁",
    "欣",
    "磊",
    "强",
    "佳怡",
    "雨桐",
    "子涵",
    "思远",
    "浩然",
    "梦瑶",
    "嘉琪",
    "一鸣",
    "若曦",
    "文博",
)
_STORES = (
    "杭州湖滨店",
    "上海南京路店",
    "广州天河店",
    "成都春熙路店",
    "武汉江汉路店",
    "南京新街口店",
    "深圳万象城店",
    "西安钟楼店",
)
_MOM_PREFIX = (
    "小雨",
    "糖糖",
    "豆豆",
    "乐乐",
    "安安",
    "果果",
    "朵朵",
    "米粒",
    "团子",
    "橙子",
    "悠悠",
    "可乐",
    "布丁",
    "多多",
    "甜甜",
    "贝贝",
    "点点",
    "妞妞",
    "壮壮",
    "桃子",
)
_MOM_SUFFIX = ("妈妈", "妈", "麻麻", "爸爸", "宝妈", "妈咪")
_FASHION_NICKS = (
    "Lily",
    "阿杰",
    "晴天",
    "小鹿",
    "七七",
    "一一",
    "大橙子",
    "Momo",
    "木木",
    "Coco",
    "阿紫",
    "北北",
    "Vivian",
    "小满",
    "星星",
    "南风",
    "Anna",
    "鱼丸",
    "夏天",
    "Kiki",
)
# One nickname carries markup on purpose: names are untrusted and must be escaped downstream.
MARKUP_NICKNAME = "小鱼<b>吐泡泡</b>"


class Brand(StrEnum):
    FORMULA = "formula"  # 奶粉 customer groups (美素宝妈交流群)
    FASHION = "fashion"  # store member groups run by guides


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A team member: roster id, display name, role and simulated platform user id."""

    id: str
    name: str
    role: Role
    user_id: str
    store: str = ""
    supervisor: str = ""

    @property
    def card(self) -> str:
        """Group nickname (群名片) shown as ``sender_name``."""
        labels = {
            "guide": f"{self.store}导购",
            "operator": "群管家",
            "specialist": "营养顾问",
            "supervisor": "运营主管",
            "admin": "管理员",
        }
        return f"{labels[self.role]}-{self.name}"


@dataclass(frozen=True, slots=True)
class Customer:
    user_id: str
    nickname: str


@dataclass(frozen=True, slots=True)
class SimGroup:
    id: str
    name: str
    brand: Brand
    owners: tuple[str, ...]  # roster ids of the staff accountable for the group
    customers: tuple[Customer, ...]
    store: str = ""


@dataclass(frozen=True, slots=True)
class Cast:
    seed: int
    staff: tuple[StaffMember, ...]
    sim_groups: tuple[SimGroup, ...]

    def operators(self) -> tuple[OperatorConfig, ...]:
        """The roster entries for ``AppConfig.operators`` (user ids in ``onebot_user_ids``)."""
        return tuple(
            OperatorConfig(
                id=s.id,
                name=s.name,
                role=s.role,
                onebot_user_ids=(s.user_id,),
                supervisor=s.supervisor,
                store=s.store,
            )
            for s in self.staff
        )

    def groups(self) -> tuple[GroupConfig, ...]:
        """The monitored groups for ``AppConfig.groups`` (platform ``simulator``)."""
        return tuple(
            GroupConfig(platform=PLATFORM, id=g.id, name=g.name, owners=g.owners)
            for g in self.sim_groups
        )

    def by_role(self, role: Role) -> tuple[StaffMember, ...]:
        return tuple(s for s in self.staff if s.role == role)

    @property
    def guides(self) -> tuple[StaffMember, ...]:
        return self.by_role("guide")

    def member(self, staff_id: str) -> StaffMember:
        for s in self.staff:
            if s.id == staff_id:
                return s
        raise KeyError(staff_id)

    def staff_user_ids(self) -> frozenset[str]:
        return frozenset(s.user_id for s in self.staff)

    def group(self, group_id: str) -> SimGroup:
        for g in self.sim_groups:
            if g.id == group_id:
                return g
        raise KeyError(group_id)


class _Ids:
    """Unique QQ-like numeric ids drawn from one seeded generator."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._used: set[str] = set()

    def draw(self, lo: int, hi: int) -> str:
        while True:
            value = str(self._rng.randint(lo, hi))
            if value not in self._used:
                self._used.add(value)
                return value


def _names(rng: random.Random, count: int) -> list[str]:
    pool = [s + g for s in _SURNAMES for g in _GIVEN]
    rng.shuffle(pool)
    return pool[:count]


def _nicknames(rng: random.Random, brand: Brand, count: int) -> list[str]:
    if brand is Brand.FORMULA:
        pool = [p + s for p in _MOM_PREFIX for s in _MOM_SUFFIX]
    else:
        pool = list(_FASHION_NICKS) + [p + "酱" for p in _MOM_PREFIX]
    rng.shuffle(pool)
    # Large groups reuse nicknames with a digit, as real members do ("糖糖妈妈2").
    out: list[str] = []
    for i in range(count):
        rounds, k = divmod(i, len(pool))
        out.append(pool[k] + (str(rounds + 1) if rounds else ""))
    return out


def demo_cast(seed: int, groups: int, customers_per_group: int) -> Cast:
    """Build the cast; the same arguments always give the same people, ids and groups."""
    if groups < 1 or customers_per_group < 1:
        raise ValueError("groups and customers_per_group must be at least 1")
    rng = random.Random(f"sopbot-cast:{seed}")
    ids = _Ids(rng)
    n_ops = max(2, min(20, -(-groups // 4)))
    n_guides = max(3, min(12, groups))
    n_stores = max(2, min(len(_STORES), -(-n_guides // 2)))
    names = iter(_names(rng, 4 + n_ops + n_guides))

    sup = StaffMember("sup-01", next(names), "supervisor", ids.draw(100_000_000, 999_999_999))
    admin = StaffMember("admin-01", next(names), "admin", ids.draw(100_000_000, 999_999_999))

    def member(staff_id: str, role: Role, store: str = "") -> StaffMember:
        uid = ids.draw(100_000_000, 999_999_999)
        return StaffMember(staff_id, next(names), role, uid, store=store, supervisor=sup.id)

    ops = [member(f"op-{i + 1:02d}", "operator") for i in range(n_ops)]
    specialists = [member(f"spec-{i + 1:02d}", "specialist") for i in range(2)]
    stores = _STORES[:n_stores]
    guides = [member(f"guide-{i + 1:02d}", "guide", stores[i % n_stores]) for i in range(n_guides)]

    sim_groups: list[SimGroup] = []
    n_formula = n_fashion = 0
    for i in range(groups):
        brand = Brand.FORMULA if i % 2 == 0 else Brand.FASHION
        group_id = ids.draw(600_000_000, 899_999_999)
        nicks = _nicknames(rng, brand, customers_per_group)
        if i == groups - 1:
            nicks[-1] = MARKUP_NICKNAME
        customers = tuple(Customer(ids.draw(1_000_000_000, 3_999_999_999), nick) for nick in nicks)
        if brand is Brand.FORMULA:
            n_formula += 1
            name = f"美素宝妈交流群 {n_formula}群"
            owners: tuple[str, ...] = (ops[(n_formula - 1) % n_ops].id,)
            store = ""
        else:
            n_fashion += 1
            guide = guides[(n_fashion - 1) % n_guides]
            store = guide.store
            name = f"快鱼{store}会员福利 {n_fashion}群"
            owners = (guide.id,)
        sim_groups.append(SimGroup(group_id, name, brand, owners, customers, store))

    staff = (sup, admin, *ops, *specialists, *guides)
    return Cast(seed=seed, staff=staff, sim_groups=tuple(sim_groups))
