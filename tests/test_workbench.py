"""The workbench (home page): exactly the right items for a rep and for a manager."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import func, select, update

from app.access import disjoint_owner_branches, first_in_scope, owner_clause, scope_branches, scope_clause
from app.customers import customer_service
from app.extensions import db
from app.home import home_summary, local_day_bounds, recently_changed, workbench
from app.sales import lead_service, opportunity_service, task_service
from models.approvals import ApprovalDecision, ApprovalRequest
from models.customers import Contact, Customer
from models.orders import Order, PaymentPlan, SalesTarget
from models.pools import CustomerPool
from models.sales import Lead, Opportunity, Pipeline, Stage, Task
from models.security import Department
from tests.conftest import unique_mobile, unique_name, user

#: 10:00 in Dongying on a day long before the other tests' data (which is around today)
NOW = dt.datetime(2020, 1, 15, 2, 0)
TZ = "Asia/Shanghai"


def test_local_day_bounds_follow_the_company_time_zone() -> None:
    start, end = local_day_bounds(NOW, TZ)
    assert (start, end) == (dt.datetime(2020, 1, 14, 16, 0), dt.datetime(2020, 1, 15, 16, 0))


def make_items(owner: str, pipeline: Pipeline) -> dict[str, object]:
    """One record for each list and one just outside it, owned by `owner`."""
    actor = user(owner)
    items: dict[str, object] = {}

    def customer(name: str, next_contact: dt.datetime | None) -> Customer:
        row = Customer(name=unique_name(name), mobile=unique_mobile(), next_contact_at=next_contact)
        return customer_service.save(db.session, row, actor)

    items["contact_today"] = customer("今日联系", NOW - dt.timedelta(hours=1))
    items["contact_overdue"] = customer("逾期联系", NOW - dt.timedelta(days=3))
    items["contact_later"] = customer("以后联系", NOW + dt.timedelta(days=2))

    def task(title: str, due: dt.datetime) -> Task:
        return task_service.save(db.session, Task(title=unique_name(title), due_at=due), actor)

    items["task_overdue"] = task("逾期任务", NOW - dt.timedelta(days=1))
    items["task_today"] = task("今日任务", NOW + dt.timedelta(hours=3))
    items["task_tomorrow"] = task("明日任务", NOW + dt.timedelta(days=1, hours=1))
    done = task("已完成", NOW - dt.timedelta(days=2))
    done.status = "done"
    task_service.save(db.session, done, actor)

    def lead(name: str, created: dt.datetime, status: str = "new") -> Lead:
        row = Lead(name=unique_name(name), mobile=unique_mobile(), status=status, created_at=created)
        return lead_service.save(db.session, row, actor)

    items["lead_new"] = lead("新线索", NOW - dt.timedelta(days=2))
    items["lead_old"] = lead("旧线索", NOW - dt.timedelta(days=30))
    items["lead_contacted"] = lead("已联系线索", NOW - dt.timedelta(days=1), "contacted")

    def opportunity(name: str, close: dt.date) -> Opportunity:
        row = Opportunity(
            name=unique_name(name),
            customer=items["contact_later"],
            pipeline=pipeline,
            stage=pipeline.stages[0],
            expected_close=close,
            amount=100000,
        )
        return opportunity_service.save(db.session, row, actor)

    items["closing_this_month"] = opportunity("本月成交", dt.date(2020, 1, 28))
    items["closing_next_month"] = opportunity("下月成交", dt.date(2020, 2, 3))
    return items


def ids(work_list) -> set[int]:  # noqa: ANN001
    return {item.id for item in work_list.items}


def test_workbench_lists_exactly_the_right_items_for_a_rep_and_a_manager(app) -> None:
    pipeline = Pipeline(name=unique_name("工作台流程"), stages=[Stage(name="初步接触", position=0)])
    db.session.add(pipeline)
    db.session.commit()
    mine, teammate, other_team = (make_items(name, pipeline) for name in ("rep_a", "rep_b", "rep_c"))

    def expected(*sets: dict, key: str) -> set[int]:
        return {items[key].id for items in sets}

    rep = workbench(db.session, user("rep_a"), NOW, TZ)
    assert ids(rep.contact_today) == expected(mine, key="contact_today") | expected(
        mine, key="contact_overdue"
    )
    assert ids(rep.overdue_tasks) == expected(mine, key="task_overdue")
    assert ids(rep.tasks_today) == expected(mine, key="task_today")
    assert ids(rep.new_leads) == expected(mine, key="lead_new")
    assert ids(rep.closing_this_month) == expected(mine, key="closing_this_month")

    manager = workbench(db.session, user("manager1"), NOW, TZ)  # team1: rep_a and rep_b, not rep_c
    team = (mine, teammate)
    assert ids(manager.contact_today) == expected(*team, key="contact_today") | expected(
        *team, key="contact_overdue"
    )
    assert ids(manager.overdue_tasks) == expected(*team, key="task_overdue")
    assert ids(manager.tasks_today) == expected(*team, key="task_today")
    assert ids(manager.closing_this_month) == expected(*team, key="closing_this_month")
    assert ids(manager.new_leads) == set()  # leads assigned to the manager personally: none
    assert not ids(manager.overdue_tasks) & {other_team["task_overdue"].id}


def test_a_full_list_shows_its_first_page_and_counts_the_rest(app, login_as) -> None:
    """Twelve new leads: the list shows ten, newest first, and says twelve (the count of a
    list ordered by a descending column once failed)."""
    moment = dt.datetime(2019, 6, 1, 2, 0)  # a day no other test has leads on
    actor = user("rep_b")
    made = [
        lead_service.save(
            db.session,
            Lead(
                name=unique_name("批量线索"),
                mobile=unique_mobile(),
                status="new",
                created_at=moment - dt.timedelta(hours=n + 1),
            ),
            actor,
        ).id
        for n in range(12)
    ]
    leads = workbench(db.session, actor, moment, TZ).new_leads
    assert leads.total == 12
    assert [lead.id for lead in leads.items] == made[:10]


def test_home_page_shows_the_workbench(login_as) -> None:
    page = login_as("rep_a").get("/").get_data(as_text=True)
    for title in ("今日待联系客户", "待办任务", "本月预计成交的商机", "新分配给我的线索"):
        assert title in page


def test_workbench_shows_the_pool_and_the_money(app, login_as) -> None:
    """Customers about to return to the pool, approvals waiting, payments due, contracts ending
    and targets: each reaches the right person's workbench, within data scope."""
    rep, manager = user("rep_a"), user("manager1")
    today = dt.date(2020, 1, 15)  # NOW in Dongying
    pool = CustomerPool(name=unique_name("工作台公海"), warn_days=3, departments=[rep.department])
    soon = NOW + dt.timedelta(days=2)
    customer = Customer(name=unique_name("将回收"), owner=rep, department_id=rep.department_id)
    customer.recycle_at = soon
    contract = Order(
        number=unique_name("HT-WB-"), kind="contract", title="工作台合同", customer=customer, owner=rep,
        department_id=rep.department_id, end_date=today + dt.timedelta(days=10),
        total_amount=Decimal("50000.00"),
    )  # fmt: skip
    plan = PaymentPlan(order=contract, number=1, planned_amount=Decimal("20000.00"), planned_date=today)
    target = SalesTarget(user=rep, period="month", period_start=today.replace(day=1), metric="contract",
                         amount=Decimal("100000.00"))  # fmt: skip
    request = ApprovalRequest(document="order", document_id=1, title="工作台审批", owner=rep,
                              department_id=rep.department_id, submitted_at=NOW)  # fmt: skip
    request.decisions.append(ApprovalDecision(step=0, approver=manager))
    db.session.add_all([pool, customer, contract, plan, target, request])
    db.session.commit()
    # approved as the approvals engine would leave it (new orders are drafts by rule)
    db.session.execute(update(Order).where(Order.id == contract.id).values(status="approved"))
    db.session.commit()

    mine = workbench(db.session, rep, NOW, TZ)
    assert customer.id in ids(mine.recycle_soon)
    assert contract.id in ids(mine.contracts_expiring)
    assert plan.id in ids(mine.payments_due)
    assert target.id in {item.target.id for item in mine.targets}
    assert request.id not in ids(mine.approvals_waiting)  # waiting for the manager, not the submitter
    assert request.id in ids(workbench(db.session, manager, NOW, TZ).approvals_waiting)
    other = workbench(db.session, user("rep_c"), NOW, TZ)  # another team
    assert not ids(other.recycle_soon) & {customer.id}
    assert not ids(other.contracts_expiring) & {contract.id}
    assert not ids(other.payments_due) & {plan.id}
    page = login_as("manager1").get("/").get_data(as_text=True)
    assert "待我审批" in page and "工作台审批" in page
    pool.active = False  # leave rep_a's department to the pool tests
    db.session.commit()


def test_home_counts_stop_at_the_cap_and_say_so(app, login_as) -> None:
    """The home page's counts stop one row past CRM_COUNT_CAP and show "cap+" (an exact COUNT
    over a manager's or the admin's hundreds of thousands of rows would cost more than the page)."""
    admin = user("admin")
    customer = db.session.scalars(select(Customer).limit(1)).one()
    for _ in range(3):
        db.session.add(Contact(name=unique_name("联系人"), customer=customer, mobile=unique_mobile()))
    db.session.commit()
    exact = home_summary(db.session, admin, cap=10**9)
    assert exact.visible_customers > 3 and exact.contacts >= 3
    capped = home_summary(db.session, admin, cap=2)
    assert capped.visible_customers == capped.contacts == 3  # one past the cap: "there are more"
    assert home_summary(db.session, admin, cap=exact.visible_customers).visible_customers == (
        exact.visible_customers
    )  # exactly at the cap: no "+"
    previous = app.config["CRM_COUNT_CAP"]
    app.config["CRM_COUNT_CAP"] = 2
    try:
        page = login_as("admin").get("/").get_data(as_text=True)
    finally:
        app.config["CRM_COUNT_CAP"] = previous
    assert '<div class="crm-card-figure">2+</div>' in page


def test_recent_customers_are_the_newest_within_the_scope(app) -> None:
    """The newest changed customers of the user's scope, for a rep (one branch), a manager (their
    own and the departments', merged) and the admin (the whole company's index)."""
    for name in ("rep_a", "manager1", "admin"):
        actor = user(name)
        scope = scope_clause(db.session, Customer, actor)
        expected = db.session.scalars(
            select(Customer.id).where(scope).order_by(Customer.updated_at.desc(), Customer.id.desc()).limit(8)
        ).all()
        assert [c.id for c in recently_changed(db.session, actor)] == list(expected), name


def test_first_rows_of_each_scope_branch_are_the_first_rows_of_the_scope(app) -> None:
    """first_in_scope (the first rows of each branch of the scope's OR, merged) gives exactly what
    sorting the whole scope gives, ties on the sort key included, for every kind of scope."""
    moment = dt.datetime(2019, 6, 1, 8, 0)  # before every other test's next contact times
    for offset, owner in enumerate(("rep_a", "rep_b", "rep_c", "manager1", "director", "boss") * 3):
        due = moment + dt.timedelta(hours=offset % 4)  # four distinct times: many ties
        row = Customer(name=unique_name("分支"), mobile=unique_mobile(), next_contact_at=due)
        customer_service.save(db.session, row, user(owner))
    conditions = [Customer.next_contact_at < moment + dt.timedelta(hours=3)]
    for name in ("rep_a", "manager1", "manager2", "director", "boss", "admin", "readonly"):
        actor = user(name)
        for size in (1, 3, 10):
            expected = db.session.scalars(
                select(Customer.id)
                .where(scope_clause(db.session, Customer, actor), *conditions)
                .order_by(Customer.next_contact_at, Customer.id)
                .limit(size)
            ).all()
            found = first_in_scope(db.session, Customer, actor, conditions, [Customer.next_contact_at], size)
            assert [c.id for c in found] == list(expected), (name, size)
            assert len(scope_branches(db.session, Customer, actor)) >= 1
    # own + the 3 departments of the tree (+ those other tests add below 销售中心, + collaborations)
    assert len(scope_branches(db.session, Customer, user("director"))) >= 4


def test_disjoint_branches_of_the_scope_count_each_row_once(app) -> None:
    """Sums per branch add up to the scope's: every row of the scope meets exactly one branch,
    including a manager's own customer filed under another department."""
    manager = user("manager1")
    elsewhere = db.session.scalar(
        select(Department.id).where(Department.id != manager.department_id).limit(1)
    )
    stray = customer_service.save(
        db.session, Customer(name=unique_name("别处客户"), mobile=unique_mobile()), manager
    )
    db.session.execute(update(Customer).where(Customer.id == stray.id).values(department_id=elsewhere))
    db.session.commit()

    def count(*conditions) -> int:  # noqa: ANN002
        return db.session.scalar(select(func.count()).select_from(Customer).where(*conditions))

    for name in ("rep_a", "manager1", "director", "boss", "admin", "readonly"):
        actor = user(name)
        branches = disjoint_owner_branches(db.session, Customer, actor)
        assert count(owner_clause(db.session, Customer, actor)) == sum(count(b) for b in branches), name
        for index, branch in enumerate(branches):
            for other in branches[index + 1 :]:
                assert count(branch, other) == 0, name
    assert count(disjoint_owner_branches(db.session, Customer, manager)[-1]) >= 1  # the stray one
