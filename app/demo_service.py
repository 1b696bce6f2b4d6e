"""Demo data of the service desk (售后服务): two support teams under 客服部 with three Support
Agents, the business types, assignment rules by category and by district, the default business
hours and SLA policies, and a year of tickets with their conversation, status history,
resolutions, SLA outcomes and satisfaction surveys. app.demo calls load_service_demo().

The tickets are written as rows (a few hundred: the services would send a mail per survey and
a notice per assignment), with the values the services would have given them: numbers of the
day (app.service.number_prefix), the first matching rule's team and member in turn, the SLA
targets of app.sla.apply_targets and the outcomes they imply, the survey's token derived as
app.surveys derives it. Ratings are skewed high; the low ones say what went wrong.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import sla
from app.service import local_day, next_ticket_number, number_prefix
from app.support import token_hash
from app.surveys import survey_token
from models.base import utcnow
from models.customers import Contact, Customer, Region
from models.security import CrmUser, Department
from models.service import (
    AssignmentRule,
    Survey,
    Ticket,
    TicketCategory,
    TicketComment,
    TicketStatusChange,
)

SUPPORT_DEPARTMENT = "客服部"
#: team name, its districts (by name, under 东营市), agents (username, family name, given name)
TEAMS = [
    ("东营服务组", ("东营区", "河口区", "垦利区"), [("agent_ma", "马", "丽"), ("agent_hu", "胡", "军")]),
    ("广饶服务组", ("利津县", "广饶县"), [("agent_guo", "郭", "婷")]),
]
CITY = 370500  # 东营市
#: business type -> weight among the tickets
CATEGORIES = {
    "配送延迟": 24,
    "产品包装": 12,
    "质量问题": 15,
    "发票": 12,
    "技术支持": 16,
    "售后安装": 10,
    "其他": 11,
}
TICKETS = 320
DAYS = 365
PRIORITIES = {"low": 15, "normal": 55, "high": 22, "urgent": 8}
CHANNELS = {"staff": 30, "web": 30, "email": 15, "phone": 25}
RATINGS = {5: 46, 4: 29, 3: 11, 2: 8, 1: 6}
ANSWERED_SHARE = 0.7

# category -> ([(subject, description)], [(resolution, method)], [low-rating comments])
# fmt: off
TEXTS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]], list[str]]] = {
    "配送延迟": (
        [("订单发货一周仍未到货", "上周下的订单, 物流显示已发货, 到现在还没收到, 车间等着用料。"),
         ("物流信息三天没有更新", "运单号查询一直停在济南中转站, 麻烦帮忙催一下。"),
         ("约定到货日期已过", "合同约定本周一到货, 现在还没有消息, 请尽快确认发货时间。"),
         ("送货司机联系不上", "今天应该送货, 司机电话一直打不通, 仓库的人一直在等。")],
        [("已联系物流公司加急配送, 次日送达并签收", "explanation"),
         ("中转站滞留, 已安排专车直送客户仓库", "other"),
         ("已重新发货并补偿运费", "reissue")],
        ["配送太慢了, 等了一个多星期才到", "送货太慢, 耽误了生产", "物流一直不更新, 配送太慢",
         "催了好几次才送到, 配送太慢"]),
    "产品包装": (
        [("桶装产品包装破损", "收到的 200 公斤桶有两个破损渗漏, 已拍照。"),
         ("外箱受潮变形", "纸箱全部受潮, 里面的袋子也湿了, 不敢用。"),
         ("标签贴错", "桶上的标签和实际产品型号不一致, 请确认。")],
        [("已补发破损的两桶, 破损件由物流取回", "replacement"),
         ("已换货, 并要求仓库加固包装", "replacement"),
         ("已寄送正确标签并说明批号对应关系", "reissue")],
        ["包装破损, 桶都漏了", "包装太差了, 外箱全湿了", "包装破损严重, 换货还要等很久"]),
    "质量问题": (
        [("产品颜色与样品不一致", "这批货颜色明显比样品深, 影响我们的成品外观。"),
         ("检测指标不合格", "我们质检测的含量只有 95%, 合同要求 98%, 请核实。"),
         ("产品里有杂质", "开桶后发现有黑色颗粒杂质, 已封存待检。")],
        [("复检确认批次偏差, 已退货退款", "refund"),
         ("送第三方检测合格, 已向客户解释检测方法差异", "explanation"),
         ("已换发合格批次并承担检测费用", "replacement")],
        ["质量问题拖了很久才处理", "产品质量不稳定, 处理结果不满意", "质量问题没有解决就关闭了工单"]),
    "发票": (
        [("发票抬头开错", "发票抬头少了 “有限” 两个字, 财务无法入账。"),
         ("需要补开增值税专用发票", "上月订单开的是普通发票, 我们需要专票。"),
         ("发票金额与合同不符", "发票金额比合同多了 500 元运费, 请核对。")],
        [("已作废原发票并重开, 快递寄出", "reissue"),
         ("已补开增值税专用发票", "reissue"),
         ("核对合同后重开发票, 运费另开", "reissue")],
        ["发票开错了, 还要重新寄", "发票开错两次, 财务很有意见", "补开发票太慢了"]),
    "技术支持": (
        [("产品储存条件咨询", "夏季仓库温度较高, 请问产品储存有什么要求?"),
         ("配比参数咨询", "新产线调试, 需要推荐的配比和反应温度。"),
         ("安全技术说明书索取", "请提供最新版 MSDS, 安监检查需要。")],
        [("已电话说明储存要求并发送技术资料", "remote"),
         ("技术工程师远程指导调试完成", "remote"),
         ("已发送最新版安全技术说明书", "explanation")],
        ["技术支持回复太慢", "问了三次都没说清楚", "技术人员不专业, 问题没有解决"]),
    "售后安装": (
        [("预约上门安装", "设备已到货, 请安排技术人员上门安装调试。"),
         ("安装后试运行异常", "安装完成后试运行有异响, 请派人检查。"),
         ("需要现场培训", "新设备操作人员需要培训, 请安排时间。")],
        [("工程师上门安装调试完成, 客户签字验收", "onsite"),
         ("上门检查更换轴承, 试运行正常", "onsite"),
         ("已安排现场培训两次", "onsite")],
        ["上门安装一直没人来", "安装师傅迟到了半天", "安装后问题还在, 又约了一次"]),
    "其他": (
        [("修改收货地址", "公司搬迁, 以后的订单请送到新厂区。"),
         ("咨询合作政策", "想了解年度框架协议的价格政策。"),
         ("投诉送货司机态度", "送货司机态度很差, 卸货时和仓管吵了起来。")],
        [("已更新客户收货地址", "other"),
         ("已转销售经理跟进并回电说明", "explanation"),
         ("已向物流公司投诉并向客户道歉", "explanation")],
        ["客服回复太慢", "电话一直占线, 客服回复太慢", "态度不好, 处理结果不满意"]),
}
# fmt: on
GOOD_COMMENTS = ["处理很及时, 谢谢", "客服态度很好", "问题解决了, 满意", "响应快, 专业", "", "", ""]
MIDDLE_COMMENTS = ["还可以, 希望以后更快一些", "问题解决了, 但是等的时间有点长", ""]
REPLIES = [
    "您好, 已收到您的反馈, 我们正在核实, 稍后回复您。",
    "您好, 问题已记录, 已转相关同事处理, 今天内给您答复。",
    "您好, 感谢反馈, 请提供订单号和现场照片, 便于我们核实。",
]
NOTES = ["已电话联系客户确认情况", "已联系物流公司核实", "已通知仓库和质检部门", "已请销售同事协助沟通"]
ASK_CUSTOMER = "请提供订单号、批号和现场照片, 收到后我们马上处理。"
CUSTOMER_REPLIES = ["照片已上传, 请查看。", "订单号已发到邮箱。", "好的, 谢谢, 等你们消息。"]


def _weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _hours(hours: float) -> dt.timedelta:
    return dt.timedelta(seconds=round(hours * 3600))


@dataclass
class Rule:
    """An assignment rule as generated: conditions, team members, the round-robin pointer."""

    row: AssignmentRule
    members: list[int]
    department_id: int | None
    turn: int = 0

    def matches(self, district: int | None, category_id: int) -> bool:
        if self.row.district_codes and district not in self.row.district_codes:
            return False
        return not self.row.category_ids or category_id in self.row.category_ids

    def pick(self) -> int:
        chosen = self.members[self.turn % len(self.members)]
        self.turn += 1
        return chosen


def ensure_categories(session: Session) -> dict[str, TicketCategory]:
    """The business types (those missing are added, as app.service.seed_categories does)."""
    existing = {c.name: c for c in session.scalars(select(TicketCategory))}
    for position, name in enumerate(CATEGORIES, start=1):
        if name not in existing:
            existing[name] = TicketCategory(name=name, position=position * 10, active=True)
            session.add(existing[name])
    session.flush()
    return existing


def ensure_teams(session: Session, password: str) -> dict[str, tuple[Department, list[CrmUser]]]:
    """东营服务组 and 广饶服务组 under 客服部 (created when the demo lacks it), with their agents."""
    sm = current_app.appbuilder.sm
    support = session.scalar(select(Department).where(Department.name == SUPPORT_DEPARTMENT))
    if support is None:
        root = session.scalar(
            select(Department).where(Department.parent_id.is_(None)).order_by(Department.id)
        )
        support = Department(name=SUPPORT_DEPARTMENT, parent_id=root.id if root else None)
        session.add(support)
        session.flush()
    teams = {}
    for name, _districts, agents in TEAMS:
        team = session.scalar(select(Department).where(Department.name == name))
        if team is None:
            team = Department(name=name, parent_id=support.id)
            session.add(team)
            session.flush()
        members = []
        for username, surname, given in agents:
            user = session.scalar(select(CrmUser).where(CrmUser.username == username))
            if user is None:
                created = sm.add_user(
                    username=username,
                    first_name=given,
                    last_name=surname,
                    email=f"{username}@lukechem.example.cn",
                    role=sm.find_role("Support Agent"),
                    password=password,
                )
                user = session.get(CrmUser, created.id)
            user.department_id = team.id
            members.append(user)
        team.leader_id = members[0].id
        for user in members:
            user.manager_id = support.leader_id if user is members[0] else members[0].id
        teams[name] = (team, members)
    session.flush()
    return teams


def district_codes(session: Session) -> dict[str, int]:
    """Dongying's districts and counties by name, from the Region table."""
    rows = session.execute(select(Region.name, Region.code).where(Region.parent_code == CITY))
    return {name: code for name, code in rows}


def ensure_rules(
    session: Session,
    categories: dict[str, TicketCategory],
    teams: dict[str, tuple[Department, list[CrmUser]]],
    districts: dict[str, int],
) -> list[Rule]:
    """Invoices to the head of 客服部, technical work to 东营服务组 (fewest open tickets), then
    each team its districts by turn, and whatever is left to 东营服务组."""
    support = session.scalar(select(Department).where(Department.name == SUPPORT_DEPARTMENT))
    head = support.leader_id if support is not None else None
    dongying, guangrao = (teams[name] for name, _d, _a in TEAMS)
    specs: list[tuple[str, int, dict[str, Any], tuple[Department, list[CrmUser]] | None]] = []
    if head is not None:
        specs.append(("发票问题交客服主管", 10, {"category_ids": [categories["发票"].id]}, None))
    specs += [
        (
            "技术支持与安装交东营服务组",
            20,
            {
                "category_ids": [categories["技术支持"].id, categories["售后安装"].id],
                "strategy": "least_open",
            },
            dongying,
        ),
        (
            "东营区河口区垦利区",
            30,
            {"district_codes": [districts[d] for d in TEAMS[0][1] if d in districts]},
            dongying,
        ),
        (
            "利津县广饶县",
            40,
            {"district_codes": [districts[d] for d in TEAMS[1][1] if d in districts]},
            guangrao,
        ),
        ("其他地区", 90, {}, dongying),
    ]
    rules = []
    for name, position, conditions, team in specs:
        row = session.scalar(select(AssignmentRule).where(AssignmentRule.name == name))
        if row is None:
            row = AssignmentRule(
                name=name,
                position=position,
                active=True,
                district_codes=conditions.get("district_codes", []),
                category_ids=conditions.get("category_ids", []),
                customer_levels=[],
                strategy=conditions.get("strategy", "round_robin"),
                target_user_id=None if team else head,
                target_department_id=team[0].id if team else None,
            )
            session.add(row)
        if team is None:
            department = session.scalar(select(CrmUser.department_id).where(CrmUser.id == head))
            rules.append(Rule(row, [head], department))
        else:
            rules.append(Rule(row, [u.id for u in team[1]], team[0].id))
    session.flush()
    return rules


def _status(rng: random.Random, age_days: float) -> str:
    if age_days < 2:
        return _weighted(rng, {"new": 20, "assigned": 30, "in_progress": 35, "waiting": 15})
    if age_days < 20:
        return _weighted(rng, {"in_progress": 20, "waiting": 15, "resolved": 35, "closed": 25, "reopened": 5})
    return _weighted(rng, {"closed": 85, "resolved": 12, "reopened": 3})


def _rating_comment(rng: random.Random, rating: int, complaints: list[str]) -> str | None:
    if rating <= 2:
        return rng.choice(complaints)
    return rng.choice(MIDDLE_COMMENTS if rating == 3 else GOOD_COMMENTS) or None


def load_service_demo(session: Session, rng: random.Random, password: str) -> dict[str, int]:
    """Teams, agents, categories, rules, SLA defaults and a year of tickets (once: nothing is
    generated when tickets exist). Returns what was created."""
    sla.seed_service_defaults(session)
    categories = ensure_categories(session)
    teams = ensure_teams(session, password)
    districts = district_codes(session)
    rules = ensure_rules(session, categories, teams, districts)
    session.commit()
    if session.scalar(select(Ticket.id).limit(1)) is not None:
        return {"tickets": 0}
    return generate_tickets(session, rng, rules, categories, districts, TICKETS)


def generate_tickets(
    session: Session,
    rng: random.Random,
    rules: list[Rule],
    categories: dict[str, TicketCategory],
    districts: dict[str, int],
    count: int,
) -> dict[str, int]:
    """`count` tickets over the past year, the newest still open, every status at least once."""
    now = utcnow().replace(microsecond=0)
    local_districts = sorted(districts.values())
    customers = session.execute(
        select(Customer.id, Customer.district_code, Customer.created_at).order_by(Customer.id)
    ).all()
    contacts = dict(
        session.execute(
            select(Contact.customer_id, Contact.id).where(Contact.is_primary.is_(True)).order_by(Contact.id)
        ).all()
    )
    support = session.scalar(select(Department).where(Department.name == SUPPORT_DEPARTMENT))
    moments = sorted(now - dt.timedelta(seconds=rng.uniform(600, DAYS * 86400)) for _ in range(count))
    # every status at least once: the newest tickets take those the draw may miss
    forced = {count - 1: "new", count - 2: "assigned", count - 3: "in_progress", count - 4: "waiting"}
    recent = max(8, count // 10)  # the newest tickets are still being worked on
    forced |= {count - recent - 1: "resolved", count - recent - 2: "reopened", count - recent - 3: "closed"}
    numbers: dict[dt.date, int] = {}
    counts = {"tickets": 0, "comments": 0, "status_changes": 0, "surveys": 0, "answered": 0}
    for index, created in enumerate(moments):
        created = created.replace(microsecond=0)
        category_name = _weighted(rng, CATEGORIES)
        category = categories[category_name]
        subjects, resolutions, complaints = TEXTS[category_name]
        subject, description = rng.choice(subjects)
        known = [c for c in customers if c.created_at <= created]  # a customer's tickets come after it
        customer = rng.choice(known) if known and rng.random() < 0.85 else None
        district = (
            customer.district_code
            if customer is not None and customer.district_code in local_districts
            else rng.choice(local_districts)
            if local_districts
            else None
        )
        status = forced.get(index) or _status(rng, (now - created).total_seconds() / 86400)
        if index >= count - recent and status in ("resolved", "closed", "reopened") and index not in forced:
            status = "in_progress"
        day = local_day(created)
        if day not in numbers:  # the day's next number (other tickets may exist that day)
            numbers[day] = int(next_ticket_number(session, day)[len(number_prefix(day)) :]) - 1
        numbers[day] += 1
        ticket = Ticket(
            number=f"{number_prefix(day)}{numbers[day]:04d}",
            subject=subject,
            description=description,
            customer_id=customer.id if customer is not None else None,
            contact_id=contacts.get(customer.id) if customer is not None else None,
            category_id=category.id,
            priority=_weighted(rng, PRIORITIES),
            channel="web" if customer is None else _weighted(rng, CHANNELS),
            district_code=district,
            status="new",
            match_state="matched" if customer is not None else "unmatched",
            requester_name=None
            if customer is not None
            else rng.choice(["王先生", "李女士", "赵经理", "孙工"]),
            requester_mobile=None if customer is not None else f"139{rng.randrange(10**8):08d}",
            created_at=created,
            updated_at=created,
            reopen_count=0,
            custom={},
        )
        if status != "new":
            rule = next(r for r in rules if r.matches(district, category.id))
            ticket.assignment_rule_id = rule.row.id
            ticket.owner_id = rule.pick()
            ticket.department_id = rule.department_id
            ticket.assigned_at = created + dt.timedelta(seconds=rng.randint(5, 120))
        else:
            ticket.department_id = support.id if support is not None else None
        sla.apply_targets(session, ticket, created)
        history: list[tuple[str | None, str, dt.datetime, int | None]] = [(None, "new", created, None)]
        if ticket.assigned_at is not None:
            history.append(("new", "assigned", ticket.assigned_at, None))
        comments: list[TicketComment] = []
        agent = ticket.owner_id
        end = now
        if status not in ("new", "assigned"):
            response = created + _hours(min(rng.lognormvariate(math.log(2.5), 1.0), 72))
            ticket.first_response_at = _clamp(response, ticket.assigned_at or created, now)
            history.append(("assigned", "in_progress", ticket.first_response_at, agent))
            comments.append(_comment(ticket.first_response_at, agent, rng.choice(REPLIES)))
            if rng.random() < 0.4:
                note_at = ticket.first_response_at + _hours(rng.uniform(0.2, 4))
                comments.append(
                    _comment(_clamp(note_at, note_at, now), agent, rng.choice(NOTES), internal=True)
                )
        last = history[-1][1]
        if status in ("waiting", "resolved", "closed", "reopened") and (
            status == "waiting" or rng.random() < 0.25
        ):
            asked = ticket.first_response_at + _hours(rng.uniform(0.5, 8))
            asked = _clamp(asked, ticket.first_response_at, now)
            history.append((last, "waiting", asked, agent))
            comments.append(_comment(asked, agent, ASK_CUSTOMER))
            last = "waiting"
            if status == "waiting":
                ticket.sla_paused_at = asked
            else:
                answered = _clamp(asked + _hours(rng.uniform(1, 30)), asked, now)
                comments.append(_customer_comment(answered, rng.choice(CUSTOMER_REPLIES)))
                history.append(("waiting", "in_progress", answered, agent))
                last = "in_progress"
        resolved_at = None
        if status in ("resolved", "closed", "reopened"):
            start = history[-1][2]
            resolved_at = start + _hours(min(rng.lognormvariate(math.log(18), 0.9), 400))
            resolved_at = _clamp(resolved_at, start, now)
            resolution, method = rng.choice(resolutions)
            ticket.resolution, ticket.resolution_method = resolution, method
            history.append((last, "resolved", resolved_at, agent))
            comments.append(_comment(resolved_at, agent, resolution))
            ticket.resolved_at = resolved_at
            end = resolved_at
            last = "resolved"
        _outcome(ticket, end, now)
        if status in ("closed", "reopened") and resolved_at is not None:
            closed_at = _clamp(resolved_at + _hours(rng.uniform(4, 72)), resolved_at, now)
            history.append(("resolved", "closed", closed_at, agent))
            ticket.closed_at = closed_at
            last = "closed"
        if status == "reopened":
            reopened_at = _clamp(ticket.closed_at + _hours(rng.uniform(1, 48)), ticket.closed_at, now)
            comments.append(_customer_comment(reopened_at, "问题又出现了, 请再看一下。"))
            history.append((last, "reopened", reopened_at, None))
            ticket.reopen_count = 1
            ticket.resolved_at = ticket.closed_at = None
            calendar = sla.BusinessCalendar.load(session)
            if ticket.sla_policy_id is not None:
                policy = ticket.sla_policy
                ticket.resolution_due = calendar.add_minutes(reopened_at, policy.resolution_minutes)
            ticket.sla_state = "breached" if ticket.resolution_due and ticket.resolution_due <= now else "ok"
        ticket.status = status
        ticket.updated_at = max([created] + [moment for *_x, moment, _by in history])
        if ticket.sla_state in ("at_risk", "breached") and ticket.is_open:
            ticket.sla_notified = ticket.sla_state
        session.add(ticket)
        session.flush()
        for from_status, to_status, moment, by in history:
            session.add(
                TicketStatusChange(
                    ticket_id=ticket.id,
                    from_status=from_status,
                    to_status=to_status,
                    changed_at=moment,
                    changed_by_id=by,
                )
            )
        for comment in comments:
            comment.ticket_id = ticket.id
            session.add(comment)
        counts["tickets"] += 1
        counts["status_changes"] += len(history)
        counts["comments"] += len(comments)
        if resolved_at is not None:
            counts["surveys"] += 1
            counts["answered"] += _survey(session, rng, ticket, resolved_at, now, complaints)
    for rule in rules:
        if rule.turn:
            rule.row.last_assigned_user_id = rule.members[(rule.turn - 1) % len(rule.members)]
    session.commit()
    return counts


def _clamp(moment: dt.datetime, low: dt.datetime, now: dt.datetime) -> dt.datetime:
    """A generated moment kept after the previous event and before now (whole seconds)."""
    return max(low, min(moment, now - dt.timedelta(seconds=1))).replace(microsecond=0)


def _comment(moment: dt.datetime, author: int | None, body: str, internal: bool = False) -> TicketComment:
    return TicketComment(
        author_id=author, body=body, internal=internal, from_customer=False, created_at=moment
    )


def _customer_comment(moment: dt.datetime, body: str) -> TicketComment:
    return TicketComment(author_id=None, body=body, internal=False, from_customer=True, created_at=moment)


def _outcome(ticket: Ticket, end: dt.datetime, now: dt.datetime) -> None:
    """The SLA flags and state the SLA hooks leave: a target missed when its moment came after
    the due (an open ticket: when the due has passed); a resolved ticket met or breached."""
    if ticket.first_response_due is not None:
        responded = ticket.first_response_at or now
        ticket.first_response_breached = responded > ticket.first_response_due
    if ticket.resolution_due is not None and ticket.sla_paused_at is None:
        ticket.resolution_breached = (ticket.resolved_at or now) > ticket.resolution_due
    breached = ticket.first_response_breached or ticket.resolution_breached
    if ticket.resolved_at is not None:
        ticket.sla_state = "breached" if breached else "met"
        ticket.sla_risk_at = None
    elif breached:
        ticket.sla_state = "breached"
    elif ticket.sla_paused_at is None and ticket.sla_risk_at is not None and ticket.sla_risk_at <= now:
        ticket.sla_state = "at_risk"
    else:
        ticket.sla_state = "ok"


def _survey(
    session: Session,
    rng: random.Random,
    ticket: Ticket,
    sent_at: dt.datetime,
    now: dt.datetime,
    complaints: list[str],
) -> int:
    """The survey sent on resolution (its token as app.surveys derives it); answered or not."""
    survey = Survey(
        ticket_id=ticket.id, token_hash=token_hash(survey_token(ticket.id, sent_at)), sent_at=sent_at
    )
    answered = 0
    answered_at = sent_at + _hours(rng.uniform(0.5, 72))
    if rng.random() < ANSWERED_SHARE and answered_at < now:
        rating = _weighted(rng, RATINGS)
        if ticket.resolution_breached and rating > 2 and rng.random() < 0.3:
            rating -= 2  # late resolutions are rated lower
        survey.answered_at = answered_at
        survey.rating = rating
        survey.comment = _rating_comment(rng, rating, complaints)
        answered = 1
    session.add(survey)
    return answered
