"""Demo data of the customer pool (公海): two pools with rules, customers waiting in them, and a
history of moves (recycled, claimed, released, handed over). app.demo calls load_pool_demo()."""

from __future__ import annotations

import datetime as dt
import random

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.customers import Customer
from models.pools import CustomerPool, PoolMove, PoolRule
from models.security import CrmUser, Department


def _pool(session: Session, name: str, departments: list[Department], **settings: object) -> CustomerPool:
    pool = session.scalar(select(CustomerPool).where(CustomerPool.name == name))
    if pool is None:
        pool = CustomerPool(name=name, **settings)
        pool.departments = departments
        session.add(pool)
    return pool


def load_pool_demo(session: Session, rng: random.Random, reps: list[CrmUser]) -> dict[str, int]:
    """东营公海 serves the sales reps' departments (no follow-up for 30 days, 60 for key
    customers, OR not won within 90 days; locked and won customers exempt); 总部公海 serves the
    root department. About one customer in eight of the reps goes into a pool with its history.
    The demo company started the rules within the last month (the others' owned_since), so the
    first daily run warns a few owners and takes nobody back at once.
    Idempotent on the pools (by name); run once on the customers (as the rest of the demo)."""
    now = utcnow()
    sales_departments = sorted({rep.department_id for rep in reps if rep.department_id})
    departments = list(session.scalars(select(Department).where(Department.id.in_(sales_departments))))
    root = session.scalar(select(Department).where(Department.parent_id.is_(None)).order_by(Department.id))
    local = _pool(
        session,
        "东营公海",
        departments,
        description="销售部门的公海: 30 天未跟进 (重点客户 60 天) 或 90 天未成交的客户自动回收",
        rule_logic="or",
        exempt_won=True,
        exempt_locked=True,
        warn_days=3,
        daily_claim_cap=10,
        reclaim_cooldown_days=30,
        max_owned=500,
        max_locked=20,
        hidden_fields=["mobile", "email"],
    )
    if not local.rules:
        local.rules = [
            PoolRule(kind="no_followup", days=30, days_by_level={"key": 60}, position=0),
            PoolRule(kind="not_won", days=90, days_by_level={}, position=1),
        ]
    head_office = _pool(
        session,
        "总部公海",
        [root] if root is not None and root.id not in sales_departments else [],
        description="总部的公海: 只手动退回与分配",
        recycle_enabled=False,
        daily_claim_cap=5,
        reclaim_cooldown_days=15,
    )
    session.flush()
    owned = list(
        session.scalars(
            select(Customer)
            .where(Customer.owner_id.in_([rep.id for rep in reps]), Customer.pool_id.is_(None))
            .order_by(Customer.id)
        )
    )
    counts = {"pooled": 0, "claimed": 0, "transferred": 0}
    moves: list[PoolMove] = []
    for customer in owned:
        draw = rng.random()
        when = now - dt.timedelta(days=rng.randint(1, 120), hours=rng.randint(0, 23))
        when = max(when, customer.created_at)  # not before the customer existed
        if draw < 0.125:  # went back to the pool, recycled by a rule or released by its owner
            recycled = rng.random() < 0.6
            moves.append(
                PoolMove(
                    customer_id=customer.id,
                    action="recycle" if recycled else "release",
                    pool_id=local.id,
                    from_user_id=customer.owner_id,
                    actor_id=None if recycled else customer.owner_id,
                    reason="自动回收公海「东营公海」: 超过 30 天未跟进" if recycled else "客户暂无采购计划",
                    moved_at=when,
                )
            )
            session.execute(
                update(Customer)
                .where(Customer.id == customer.id)
                .values(owner_id=None, department_id=None, pool_id=local.id, pooled_at=when, owned_since=None)
            )
            counts["pooled"] += 1
        elif draw < 0.2:  # claimed from the pool earlier
            moves.append(
                PoolMove(
                    customer_id=customer.id,
                    action="claim",
                    pool_id=local.id,
                    to_user_id=customer.owner_id,
                    actor_id=customer.owner_id,
                    moved_at=when,
                )
            )
            customer.owned_since = when
            counts["claimed"] += 1
        elif draw < 0.23 and len(reps) > 1:  # handed over from a colleague
            previous = rng.choice([rep for rep in reps if rep.id != customer.owner_id])
            moves.append(
                PoolMove(
                    customer_id=customer.id,
                    action="transfer",
                    from_user_id=previous.id,
                    to_user_id=customer.owner_id,
                    reason="同事调岗交接",
                    moved_at=when,
                    batch=f"demo-{previous.id}",
                )
            )
            customer.owned_since = when
            counts["transferred"] += 1
        else:  # the rules started last month: each owner's clock runs from then, not from years ago
            customer.owned_since = max(now - dt.timedelta(days=rng.randint(0, 29)), customer.created_at)
    session.add_all(moves)
    session.commit()
    return {"pools": 2 if head_office.id else 1, **counts}
