"""Demo data: a believable Dongying company, and a bulk generator for benchmarks.

`load_demo` goes through the services (every rule applies); `generate` uses bulk inserts of
rows that are valid by construction, because a million customers must load in minutes.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import time
from typing import Any

from flask import current_app
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session
from stdnum.cn import ric, uscc  # ric: encryption at rest

from app.customers import contact_service, customer_service
from app.customfields import CustomFieldService
from app.demo_approvals import backdate_approvals, demo_decide, load_approval_demo
from app.demo_orders import load_order_demo
from app.demo_pools import load_pool_demo
from app.demo_service import load_service_demo
from app.errors import Conflict
from app.pools import recycle
from app.security import generate_password
from customfields.definitions import CustomField
from models.base import utcnow
from models.customers import Contact, Customer, CustomerGroup, Industry, Region, Tag
from models.sales import Interaction, Lead, Opportunity, Pipeline, Product, Stage
from models.security import CrmUser, Department

MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "155",
    "156",
    "157",
    "158",
    "159",
    "180",
    "181",
    "182",
    "186",
    "187",
    "188",
    "189",
]
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡"
    "余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯"
    "龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉萍红娥玲芬燕彬鹏辉斌宇浩凯健俊帆帅旭宁晨阳峰建国海波志"
)
DONGYING_DISTRICTS = [370502, 370503, 370505, 370522, 370523]  # 东营区 河口区 垦利区 利津县 广饶县
OTHER_CITIES = [
    370102,
    370202,
    370303,
    370602,
    370702,
    371002,
    371602,
    371302,
]  # 济南 青岛 淄博 烟台 潍坊 威海 滨州 临沂
COMPANY_WORDS = [
    "胜利",
    "黄河",
    "华泰",
    "鲁明",
    "海科",
    "万达",
    "科瑞",
    "利华益",
    "正和",
    "富海",
    "金岭",
    "齐润",
    "汇泽",
    "龙港",
    "宝港",
    "新海",
    "亿维",
    "广饶",
    "垦东",
    "河口",
    "渤海",
    "黄蓝",
    "海韵",
    "鑫源",
    "诚信",
    "恒丰",
    "国瓷",
    "科达",
    "天信",
    "万通",
]
INDUSTRY_SUFFIX = {
    "石油化工": ["石化", "化工", "油服", "炼化"],
    "生态农业": ["生态农业", "农业科技", "种植专业合作社"],
    "海产品加工": ["水产", "海洋食品", "海产品"],
    "装备制造": ["机械", "装备", "石油装备", "重工"],
    "服务业": ["物流", "信息技术", "商务服务", "酒店管理"],
    "橡胶轮胎": ["轮胎", "橡胶"],
    "新材料": ["新材料", "材料科技"],
}
DEMO_ORG = [
    # (department, parent, [(username, surname, given, role, is_leader)])
    ("东营鲁科化工有限公司", None, [("gm", "刘", "建国", "Sales Manager", True)]),
    ("销售中心", "东营鲁科化工有限公司", [("sales_director", "王", "海峰", "Sales Manager", True)]),
    (
        "华东销售部",
        "销售中心",
        [
            ("manager_east", "张", "伟", "Sales Manager", True),
            ("rep_zhang", "张", "磊", "Sales Rep", False),
            ("rep_li", "李", "娜", "Sales Rep", False),
        ],
    ),
    (
        "东营本地销售部",
        "销售中心",
        [
            ("manager_local", "陈", "静", "Sales Manager", True),
            ("rep_wang", "王", "芳", "Sales Rep", False),
            ("rep_zhao", "赵", "强", "Sales Rep", False),
        ],
    ),
    ("垦利销售组", "东营本地销售部", [("rep_sun", "孙", "洋", "Sales Rep", False)]),
    ("市场部", "东营鲁科化工有限公司", [("marketing", "周", "敏", "Marketing", True)]),
    ("客服部", "东营鲁科化工有限公司", [("support", "吴", "杰", "Support Agent", True)]),
    ("财务部", "东营鲁科化工有限公司", [("finance", "郑", "秀英", "Finance", True)]),
    ("审计室", "东营鲁科化工有限公司", [("auditor", "冯", "平", "Read Only", True)]),
]
STREETS = ["南一路", "东三路", "胜利大街", "港城路", "孤岛镇工业园"]
DEMO_TAGS = ["重点跟进", "老客户", "政府合作", "危化品资质", "出口业务", "样品已寄", "价格敏感"]
DEMO_GROUPS = ["年度大客户", "东营本地客户", "春季促销目标", "售后回访名单"]


#: the Dongying company's own customer fields (the custom-field engine at work in the demo)
LOCAL_INDUSTRIES = ["石油化工", "橡胶轮胎", "有色金属", "造纸", "纺织", "农业", "海洋渔业"]
# fmt: off
DEMO_FIELDS: list[dict[str, Any]] = [
    {"api_name": "hazchem_licence", "label_zh": "危化品经营许可证号",
     "label_en": "Hazardous chemicals licence", "field_type": "text", "section": "资质",
     "unique": True, "indexed": True,
     "help_text": "如 鲁东危化经字[2026]0001"},
    {"api_name": "gov_cooperation", "label_zh": "与东营政府部门的合作关系",
     "label_en": "Cooperation with Dongying government", "field_type": "select", "section": "资质",
     "choices": ["无", "一般", "密切", "战略合作"], "indexed": True},
    {"api_name": "local_industries", "label_zh": "东营本地产业关联", "label_en": "Local industries",
     "field_type": "multi_select", "section": "资质", "choices": LOCAL_INDUSTRIES},
    {"api_name": "annual_volume_t", "label_zh": "年采购量(吨)", "label_en": "Annual volume (t)",
     "field_type": "decimal", "section": "采购", "min_value": "0", "indexed": True, "show_in_list": True},
    {"api_name": "unit_price", "label_zh": "平均单价(元/吨)", "label_en": "Average price (CNY/t)",
     "field_type": "currency", "section": "采购", "min_value": "0"},
    {"api_name": "annual_amount", "label_zh": "年采购额", "label_en": "Annual purchases",
     "field_type": "formula", "section": "采购", "formula": "ROUND(annual_volume_t * unit_price, 2)"},
    {"api_name": "first_order_date", "label_zh": "首次合作日期", "label_en": "First order",
     "field_type": "date", "section": "采购"},
    {"api_name": "cooperation_days", "label_zh": "合作天数", "label_en": "Days as a customer",
     "field_type": "formula", "section": "采购", "formula": "DAYS(TODAY(), first_order_date)"},
]
# fmt: on


def define_demo_fields(session: Session) -> None:
    """The demo company's custom fields, defined through the engine like an admin would."""
    service = CustomFieldService()
    for position, definition in enumerate(DEMO_FIELDS):
        service.save(session, CustomField(entity="customer", position=position, **definition), None)


def demo_custom_values(rng: random.Random, number: int) -> dict[str, Any]:
    """Believable values of the demo fields for a company customer."""
    first = utcnow().date().replace(year=rng.randint(2012, 2025), day=rng.randint(1, 28))
    return {
        "hazchem_licence": f"鲁东危化经字[{rng.randint(2019, 2026)}]{number:04d}",
        "gov_cooperation": rng.choice(["无", "一般", "一般", "密切", "战略合作"]),
        "local_industries": rng.sample(LOCAL_INDUSTRIES, rng.randint(1, 3)),
        "annual_volume_t": str(rng.choice([50, 120, 300, 800, 1500, 4000]) + rng.randint(0, 99)),
        "unit_price": f"{rng.randint(2800, 9800)}.00",
        "first_order_date": first.isoformat(),
    }


# --- sales: the two pipelines of the issue, products, a year of opportunities and follow-ups -------
PIPELINES = {
    "制造业": [("线索确认", 10), ("样品寄送", 30), ("实地考察", 50), ("商务谈判", 70), ("签约", 90)],
    "服务业": [("需求评估", 10), ("方案定制", 30), ("服务试用", 50), ("签约", 90)],
}
PRODUCTS = [
    ("YJ-32", "32%液碱", "基础化工", "吨", 980),
    ("LS-98", "98%浓硫酸", "基础化工", "吨", 520),
    ("YS-31", "31%工业盐酸", "基础化工", "吨", 260),
    ("PAM-A", "聚丙烯酰胺 (阴离子)", "精细化工", "吨", 9800),
    ("BXJ-99", "丙烯腈", "石油化工", "吨", 8600),
    ("SD-9000", "顺丁橡胶 BR9000", "橡胶", "吨", 11800),
    ("SYJ-2", "石油焦 (2#)", "石油化工", "吨", 2300),
    ("LQ-70", "70#道路沥青", "石油化工", "吨", 3900),
    ("FW-GD", "管道无损检测服务", "技术服务", "次", 18000),
    ("FW-WB", "年度设备维保", "技术服务", "项", 120000),
]
FOLLOW_UPS = [
    "电话沟通本月用量和价格",
    "上门拜访采购部,介绍新批次质检报告",
    "微信发送报价单,等待回复",
    "陪同客户参观厂区和罐区",
    "确认样品检测结果合格",
    "讨论年度框架协议条款",
    "催收上月货款,客户承诺月底付清",
    "邀请参加东营化工展",
    "了解客户新项目的原料需求",
]
LOST_REASONS = ["价格偏高", "竞争对手关系更好", "客户项目暂停", "账期谈不拢"]


def load_sales_demo(session: Session, rng: random.Random, reps: list[CrmUser]) -> dict[str, int]:
    """Pipelines 制造业 and 服务业, products, leads, and a year of opportunities (moving through their
    stages), follow-ups and tasks on the demo customers, all written through the services."""
    from app.sales import (  # the demo uses every domain's services
        convert_lead,
        interaction_service,
        lead_service,
        opportunity_service,
        product_service,
    )

    pipelines = []
    for position, (name, stages) in enumerate(PIPELINES.items()):
        flow = Pipeline(name=name, position=position, description=f"{name}客户的销售流程")
        # 商务谈判 onwards a deal is not sent back to an earlier stage (a stage with moving back off)
        flow.stages = [
            Stage(name=n, position=i, probability=p, allow_back=n != "商务谈判")
            for i, (n, p) in enumerate(stages)
        ]
        flow.stages += [
            Stage(name="赢单", position=90, probability=100, is_won=True),
            Stage(name="输单", position=91, probability=0, is_lost=True),
        ]
        session.add(flow)
        pipelines.append(flow)
    session.commit()
    products = []
    for sku, name, category, unit, price in PRODUCTS:
        product = Product(sku=sku, name=name, category=category, unit=unit, price=price)
        product_service.save(session, product, None)
        products.append(product)
    now = utcnow()
    counts = {"opportunities": 0, "follow_ups": 0, "leads": 0}
    for customer in session.scalars(select(Customer).order_by(Customer.id)).all():
        owner = customer.owner or rng.choice(reps)
        flow = pipelines[1] if customer.industry and "服务" in customer.industry.name else pipelines[0]
        age = customer_age_days(customer, now)
        for _number in range(rng.choice([0, 1, 1, 2])):
            opened = now - dt.timedelta(days=rng.randint(min(20, age), min(360, age)))
            path = flow.stages[: rng.randint(1, len(flow.stages) - 2)]
            ending = rng.random()
            if ending < 0.3:
                path = [*path, flow.stages[-2]]  # won
            elif ending < 0.45:
                path = [*path, flow.stages[-1]]  # lost
            opportunity = Opportunity(
                name=f"{customer.name[:20]} - {rng.choice(products).name}",
                customer=customer,
                pipeline=flow,
                stage=path[0],
                owner=owner,
                amount=rng.choice([50000, 120000, 300000, 800000, 1500000]),
                expected_close=(opened + dt.timedelta(days=rng.randint(30, 150))).date(),
                products=rng.sample(products, rng.randint(1, 2)),
            )
            opportunity_service.save(session, opportunity, owner)
            for stage in path[1:]:
                if stage.is_lost:  # (read before the move: reading it later would autoflush)
                    opportunity.close_reason = rng.choice(LOST_REASONS)
                opportunity.stage = stage
                opportunity_service.save(session, opportunity, owner)
            step = (now - opened) / (len(opportunity.history) + 1)
            for number, change in enumerate(opportunity.history):  # spread over the months it ran
                change.changed_at = opened + step * number
            opportunity.stage_changed_at = opportunity.history[-1].changed_at
            if opportunity.status != "open":
                opportunity.closed_at = opportunity.stage_changed_at
            else:  # open deals close soon: some this month, on the workbench
                opportunity.expected_close = now.date() + dt.timedelta(days=rng.randint(-5, 75))
            opportunity.created_at = opened
            session.commit()
            counts["opportunities"] += 1
        days = range(1, min(365, age) + 1)
        for days_ago in sorted(rng.sample(days, min(len(days), rng.randint(2, 7))), reverse=True):
            occurred = (now - dt.timedelta(days=days_ago)).replace(
                hour=rng.randint(8, 17), minute=0, second=0
            )
            follow_up = Interaction(
                customer=customer,
                owner_id=owner.id,
                kind=rng.choice(["call", "call", "visit", "meeting", "email"]),
                occurred_at=occurred,
                duration_minutes=rng.choice([5, 15, 30, 60, 90]),
                content=rng.choice(FOLLOW_UPS),
                outcome=rng.choice(["有意向", "待报价", "需再跟进", None]),
                next_contact_at=occurred + dt.timedelta(days=rng.randint(3, 30)) if days_ago < 30 else None,
            )
            interaction_service.save(session, follow_up, owner)
            counts["follow_ups"] += 1
    for i in range(15):
        surname, given = _person(rng)
        lead = Lead(
            name=surname + given,
            company=f"{rng.choice(COMPANY_WORDS)}新材料科技有限公司" if i % 3 else None,
            mobile=_mobile(rng),
            source=rng.choice(["exhibition", "website", "referral", "cold_call"]),
            interest=rng.choice(["液碱", "硫酸", "PAM", "管道检测", "沥青"]),
            status=rng.choice(["new", "new", "contacted", "qualified", "disqualified"]),
            owner=rng.choice(reps),
        )
        lead_service.save(session, lead, None)
        counts["leads"] += 1
    counts["converted leads"] = _convert_demo_leads(session, convert_lead)
    return counts


def customer_age_days(customer: Customer, now: dt.datetime) -> int:
    """Whole days since the customer was created (at least 1): the demo's history of a
    customer (follow-ups, opportunities, orders) happens within them."""
    return max(1, (now - customer.created_at).days)


def _convert_demo_leads(session: Session, convert_lead: Any, wanted: int = 3) -> int:
    """A few company leads converted as a rep would (attached to the customer that already looks
    like theirs, if any), so the lead list shows converted leads linked to their customer."""
    query = select(Lead).where(Lead.company.is_not(None), Lead.status != "disqualified").order_by(Lead.id)
    leads = session.scalars(query.limit(wanted)).all()
    for number, lead in enumerate(leads, start=1):
        try:
            convert_lead(session, lead, None, amount=number * 60000)
        except Conflict as exc:  # a similar customer exists: attach to it
            convert_lead(session, lead, None, customer_id=int(exc.errors["candidates"][0]))
    return len(leads)


def is_empty(session: Session) -> bool:
    return not session.scalar(select(func.count()).select_from(select(Customer.id).limit(1).subquery()))


def _mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def _credit_code(district: int, serial: int) -> str:
    body = f"91{district}" + f"{serial:09d}"[-9:]
    return body + uscc.calc_check_digit(body)


# --- encryption at rest ---
#: 惠民地区 利津县: the code Dongying's people born before the city was founded (1983) carry
OLD_DONGYING_CODE = 372330


def demo_id_number(district: int, birth: dt.date, serial: int, gender: str) -> str:
    """A valid resident ID number (checksum, birth date, a place code of that year) for demo people;
    the sequence digit is odd for men, even for women, as on real cards."""
    sequence = (serial * 2) % 1000 + (1 if gender == "male" else 0)
    for code in (district, OLD_DONGYING_CODE):
        body = f"{code}{birth:%Y%m%d}{sequence:03d}"
        number = body + ric.calc_check_digit(body + "0")  # it ignores the last character
        if ric.is_valid(number):
            return number
    raise ValueError(f"no valid ID number for {district} {birth}")


def _person(rng: random.Random) -> tuple[str, str]:
    return rng.choice(SURNAMES), "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def load_demo(session: Session, seed: int = 20261123) -> dict[str, Any] | None:
    """The Dongying demo company: departments, a user in every role, customers, contacts."""
    if not is_empty(session):
        return None
    rng = random.Random(seed)
    sm = current_app.appbuilder.sm
    password = os.environ.get("CRM_DEMO_PASSWORD") or generate_password()
    departments: dict[str, Department] = {}
    users: dict[str, CrmUser] = {}
    for name, parent, members in DEMO_ORG:
        root = None if parent else session.scalar(select(Department).where(Department.parent_id.is_(None)))
        if root is not None:  # the company created with the admin becomes the demo company
            root.name, dept = name, root
        else:
            dept = Department(name=name, parent=departments.get(parent) if parent else None)
            session.add(dept)
        session.flush()
        departments[name] = dept
        leader = None
        for username, surname, given, role, is_leader in members:
            user = sm.add_user(
                username=username,
                first_name=given,
                last_name=surname,
                email=f"{username}@lukechem.example.cn",
                role=sm.find_role(role),
                password=password,
            )
            user = session.get(CrmUser, user.id)
            user.department_id = dept.id
            user.mobile = _mobile(rng)
            users[username] = user
            if is_leader:
                leader = user
                dept.leader_id = user.id
        for username, *_rest in members:
            user = users[username]
            parent_leader = departments[parent].leader_id if parent else None
            user.manager_id = leader.id if leader and user is not leader else parent_leader
    session.commit()

    tags = [Tag(name=t) for t in DEMO_TAGS]
    groups = [CustomerGroup(name=g) for g in DEMO_GROUPS]
    session.add_all(tags + groups)
    session.commit()
    industries = {i.name: i for i in session.scalars(select(Industry))}
    reps = [u for u in users.values() if u.username.startswith(("rep_", "manager_"))]
    define_demo_fields(session)
    customers = contacts = 0
    for i in range(60):
        owner = rng.choice(reps)
        if i % 6 == 5:
            surname, given = _person(rng)
            district = rng.choice(DONGYING_DISTRICTS)
            gender = rng.choice(["male", "female"])
            birth_date = utcnow().date().replace(year=rng.randint(1965, 1998), day=rng.randint(1, 28))
            customer = Customer(
                kind="individual",
                name=surname + given,
                gender=gender,
                birth_date=birth_date,
                id_number=demo_id_number(district, birth_date, i, gender),
                occupation=rng.choice(["个体经营", "养殖户", "教师", "工程师", "采购经理"]),
                mobile=_mobile(rng),
                district_code=district,
                street=f"{rng.choice(['府前街', '西四路', '黄河路', '济南路'])}{rng.randint(1, 300)}号",
                source=rng.choice(["referral", "visit", "website"]),
                level=rng.choice(["normal", "potential"]),
                status=rng.choice(["prospect", "following", "won"]),
                locality="local",
                purchase_frequency=rng.choice(["mid", "low"]),
                owner_id=owner.id,
            )
        else:
            industry_name = rng.choice(list(INDUSTRY_SUFFIX))
            local = rng.random() < 0.7
            district = rng.choice(DONGYING_DISTRICTS if local else OTHER_CITIES)
            word = COMPANY_WORDS[i % len(COMPANY_WORDS)]
            city_name = "东营" if local else ""
            customer = Customer(
                kind="company",
                name=f"{city_name}{word}{rng.choice(INDUSTRY_SUFFIX[industry_name])}有限公司"
                + ("" if i < 30 else f"{['分公司', '第二工厂', '销售公司'][i % 3]}"),
                credit_code=_credit_code(district, 100000 + i * 7919),
                industry_id=industries.get(industry_name, industries["其他"]).id,
                size=rng.choice(["small", "medium", "large", "micro"]),
                website=f"www.{['sl', 'hh', 'ht', 'lm', 'hk', 'wd'][i % 6]}{i}.com.cn",
                mobile=_mobile(rng),
                phone=f"0546-{rng.randint(7000000, 8999999)}" if local else None,
                email=f"purchase{i}@{['slchem', 'hhgroup', 'htpetro', 'lmtech'][i % 4]}.example.cn",
                district_code=district,
                street=f"{rng.choice(STREETS)}{rng.randint(1, 500)}号",
                source=rng.choice(["exhibition", "referral", "cold_call", "tender", "website"]),
                level=rng.choice(["key", "normal", "normal", "potential"]),
                status=rng.choice(["prospect", "following", "following", "won", "dormant"]),
                purchase_frequency=rng.choice(["high", "mid", "low"]),
                locality="local" if local else "remote",
                credit_limit=rng.choice([None, 50000, 200000, 1000000]),
                owner_id=owner.id,
                custom=demo_custom_values(rng, i + 1),
            )
        # the company has used KeGuan for a little over a year: customers arrived all along, so
        # "new customers by month" has a history (their follow-ups and orders come after)
        customer.created_at = utcnow() - dt.timedelta(days=rng.randint(3, 395), hours=rng.randint(0, 23))
        customer.tags = rng.sample(tags, rng.randint(0, 2))
        customer.groups = rng.sample(groups, rng.randint(0, 1))
        customer_service.save(session, customer, owner)
        customers += 1
        for j in range(1 if customer.kind == "individual" else rng.randint(1, 3)):
            surname, given = _person(rng)
            contact = Contact(
                customer_id=customer.id,
                name=surname + given,
                title=rng.choice(["采购经理", "总经理", "技术总监", "财务", "设备主管", "本人"])
                if customer.kind == "company"
                else "本人",
                mobile=customer.mobile if customer.kind == "individual" else _mobile(rng),
                email=f"{rng.choice(['zhang', 'li', 'wang', 'liu'])}{i}{j}@example.cn",
                wechat=f"wx_{i}_{j}",
                gender=rng.choice(["male", "female"]),
                is_primary=j == 0,
            )
            contact_service.save(session, contact, owner)
            contacts += 1
    figures: dict[str, Any] = load_sales_demo(session, rng, reps)
    # the money and the pool: flows and targets first, so the orders go through approval
    figures |= load_approval_demo(session, rng, reps)
    figures |= load_order_demo(session, rng, reps)
    figures |= {f"approvals {key}": value for key, value in demo_decide(session, rng).items()}
    backdate_approvals(session, rng)
    figures |= {f"pool {key}": value for key, value in load_pool_demo(session, rng, reps).items()}
    recycle(session)  # the pools' first daily run: due dates, so the workbench shows who is warned
    figures |= {f"service {key}": value for key, value in load_service_demo(session, rng, password).items()}
    counts = {"users": len(users), "customers": customers, "contacts": contacts}
    return {**counts, "password": password, **figures}


def _scale_users(
    session: Session, rng: random.Random, teams: int = 20, per_team: int = 10
) -> list[tuple[int, int]]:
    """200 users in 20 teams for benchmarks (created once); returns (user id, department id)."""
    existing = session.execute(
        select(CrmUser.id, CrmUser.department_id).where(CrmUser.username.like("bench_%"))
    ).all()
    if existing:
        return [tuple(row) for row in existing]
    sm = current_app.appbuilder.sm
    root = Department(name="基准测试销售中心")
    session.add(root)
    session.flush()
    result = []
    rep_role = sm.find_role("Sales Rep")
    manager_role = sm.find_role("Sales Manager")
    password = generate_password()
    for t in range(teams):
        dept = Department(name=f"销售{t + 1:02d}组", parent_id=root.id)
        session.add(dept)
        session.flush()
        manager_id = None
        for u in range(per_team):
            role = manager_role if u == 0 else rep_role
            user = sm.add_user(
                username=f"bench_{t:02d}_{u:02d}",
                first_name=f"{t:02d}{u:02d}",
                last_name="测",
                email=f"bench_{t:02d}_{u:02d}@bench.example.cn",
                role=role,
                password=password,
            )
            user = session.get(CrmUser, user.id)
            user.department_id = dept.id
            user.manager_id = manager_id
            if u == 0:
                manager_id = user.id
                dept.leader_id = user.id
            result.append((user.id, dept.id))
    session.commit()
    return result


def generate(session: Session, count: int, contacts_per_customer: int = 2, seed: int = 1) -> dict[str, Any]:
    """Bulk-insert `count` valid customers and their contacts, spread over 200 bench users."""
    started = time.perf_counter()
    rng = random.Random(seed)
    owners = _scale_users(session, rng)
    districts = [
        c
        for c in session.scalars(
            select(Region.code).where(Region.level == 3, Region.code.between(370000, 379999))
        )
    ]
    industries = list(session.scalars(select(Industry.id)))
    base = (session.scalar(select(func.max(Customer.id))) or 0) + 1  # keeps numbers unique per run
    levels, statuses = ["key", "normal", "normal", "potential"], ["prospect", "following", "won", "dormant"]
    now = utcnow()
    batch = 5000
    made_contacts = 0
    for offset in range(0, count, batch):
        customers = []
        for n in range(offset, min(offset + batch, count)):
            cid = base + n
            owner_id, dept_id = owners[n % len(owners)]
            district = districts[n % len(districts)]
            word = COMPANY_WORDS[rng.randrange(len(COMPANY_WORDS))]
            suffix = rng.choice(["化工", "机械", "农业科技", "水产", "物流", "轮胎"])
            customers.append(
                {
                    "kind": "company",
                    "name": f"{word}{suffix}{cid}号有限公司",
                    "credit_code": _credit_code(district, cid),
                    "industry_id": industries[n % len(industries)],
                    "size": "small",
                    "mobile": f"{MOBILE_PREFIXES[cid % len(MOBILE_PREFIXES)][:2]}9{cid:08d}",
                    "email": f"c{cid}@bench.example.cn",
                    "province_code": district // 10000 * 10000,
                    "city_code": district // 100 * 100,
                    "district_code": district,
                    "street": f"胜利大街{cid % 500}号",
                    "source": "exhibition",
                    "level": levels[n % 4],
                    "status": statuses[n % 4],
                    "purchase_frequency": ["high", "mid", "low"][n % 3],
                    "locality": "local",
                    "owner_id": owner_id,
                    "department_id": dept_id,
                    "created_at": now,
                    "updated_at": now,
                    "custom": {},
                }
            )
        ids = session.scalars(
            insert(Customer).returning(Customer.id, sort_by_parameter_order=True), customers
        ).all()
        contacts = []
        for customer_id, row in zip(ids, customers, strict=True):
            cid = int(row["email"][1:].split("@")[0])
            for k in range(contacts_per_customer):
                surname, given = SURNAMES[(cid + k) % len(SURNAMES)], GIVEN[(cid * 7 + k) % len(GIVEN)]
                contacts.append(
                    {
                        "customer_id": customer_id,
                        "name": surname + given,
                        "title": "采购经理",
                        "mobile": f"15{k}{cid:08d}",
                        "email": f"p{k}.{cid}@bench.example.cn",
                        "is_primary": k == 0,
                        "created_at": now,
                        "updated_at": now,
                        "custom": {},
                    }
                )
        if contacts:
            session.execute(insert(Contact), contacts)
            made_contacts += len(contacts)
        session.commit()
    return {"customers": count, "contacts": made_contacts, "seconds": time.perf_counter() - started}
