"""Customers (客户), their contacts (联系人) and the lists that classify them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from flask_babel import lazy_gettext
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.crypto import EncryptedString, register_blind_indexes
from customfields import CustomFieldsMixin
from models.base import Choices, Model, OwnedMixin, TimestampMixin
from models.security import CrmUser, Department

CUSTOMER_KINDS = Choices(("company", "企业"), ("individual", "个人"))
COMPANY_SIZES = Choices(
    ("micro", "微型 (1-19人)"),
    ("small", "小型 (20-99人)"),
    ("medium", "中型 (100-499人)"),
    ("large", "大型 (500人以上)"),
)
GENDERS = Choices(("male", "男"), ("female", "女"))
CUSTOMER_SOURCES = Choices(
    ("referral", "转介绍"),
    ("exhibition", "展会"),
    ("website", "官网"),
    ("cold_call", "电话开发"),
    ("visit", "上门拜访"),
    ("advertising", "广告"),
    ("tender", "招投标"),
    ("other", "其他"),
)
CUSTOMER_LEVELS = Choices(("key", "重点客户"), ("normal", "普通客户"), ("potential", "潜在客户"))
CUSTOMER_STATUSES = Choices(
    ("prospect", "初步接触"),
    ("following", "跟进中"),
    ("won", "已成交"),
    ("dormant", "休眠"),
    ("lost", "已流失"),
)
PURCHASE_FREQUENCIES = Choices(("high", "高频"), ("mid", "中频"), ("low", "低频"))
LOCALITIES = Choices(("local", "本地客户"), ("remote", "外地客户"))
REGION_LEVELS = Choices(("1", "省"), ("2", "市"), ("3", "区县"))


class Region(Model):
    """Mainland China's administrative divisions by code (省 370000, 市 370500, 区县 370502)."""

    __tablename__ = "crm_region"

    code: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    level: Mapped[int] = mapped_column(Integer, nullable=False, index=True)
    parent_code: Mapped[int | None] = mapped_column(ForeignKey("crm_region.code"), index=True, nullable=True)

    parent: Mapped[Region | None] = relationship("Region", remote_side=[code])

    def __str__(self) -> str:
        return self.name


class Industry(Model):
    """行业: an editable list, seeded with the industries of the region's companies."""

    __tablename__ = "crm_industry"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0, nullable=False)

    def __str__(self) -> str:
        return self.name


class Tag(Model):
    """标签: free labels for quick retrieval and targeting."""

    __tablename__ = "crm_tag"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(50), nullable=False, unique=True)
    color: Mapped[str | None] = mapped_column(String(7), nullable=True)

    def __str__(self) -> str:
        return self.name


class CustomerGroup(TimestampMixin, Model):
    """客户分组: a static group of customers for targeted marketing and service."""

    __tablename__ = "crm_customer_group"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False, unique=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)

    def __str__(self) -> str:
        return self.name


customer_tag = Table(
    "crm_customer_tag",
    Model.metadata,
    Column("customer_id", ForeignKey("crm_customer.id", ondelete="CASCADE"), primary_key=True),
    Column("tag_id", ForeignKey("crm_tag.id", ondelete="CASCADE"), primary_key=True, index=True),
)

customer_group_member = Table(
    "crm_customer_group_member",
    Model.metadata,
    Column("customer_id", ForeignKey("crm_customer.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "group_id",
        ForeignKey("crm_customer_group.id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
)


class Customer(OwnedMixin, TimestampMixin, CustomFieldsMixin, Model):
    """客户: a company or an individual, owned by a sales rep.

    Mobile, e-mail and credit code are unique (NULL allowed) so the duplicate rule holds even
    under concurrent writes; the service turns a violation into a message naming the record.
    """

    __tablename__ = "crm_customer"
    __entity_label__ = lazy_gettext("客户")
    #: amounts in CNY, shown as ¥1,000.00 (or CN¥ in English)
    __money__ = ("credit_limit",)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), nullable=False, default="company")
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    # company
    credit_code: Mapped[str | None] = mapped_column(String(18), unique=True)
    industry_id: Mapped[int | None] = mapped_column(
        ForeignKey("crm_industry.id", ondelete="SET NULL"), index=True
    )
    size: Mapped[str | None] = mapped_column(String(20))
    website: Mapped[str | None] = mapped_column(String(255))
    # individual
    gender: Mapped[str | None] = mapped_column(String(10))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    occupation: Mapped[str | None] = mapped_column(String(100))
    # reach
    mobile: Mapped[str | None] = mapped_column(String(20), unique=True)  # input may carry +86
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    province_code: Mapped[int | None] = mapped_column(ForeignKey("crm_region.code"), index=True)
    city_code: Mapped[int | None] = mapped_column(ForeignKey("crm_region.code"), index=True)
    district_code: Mapped[int | None] = mapped_column(ForeignKey("crm_region.code"), index=True)
    street: Mapped[str | None] = mapped_column(String(255))
    # classification
    source: Mapped[str | None] = mapped_column(String(20), index=True)
    level: Mapped[str] = mapped_column(String(20), nullable=False, default="normal")
    status: Mapped[str] = mapped_column(String(20), nullable=False, default="prospect", index=True)
    purchase_frequency: Mapped[str | None] = mapped_column(String(10), index=True)
    locality: Mapped[str | None] = mapped_column(String(10))
    credit_limit: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    notes: Mapped[str | None] = mapped_column(Text)
    # kept up to date by follow-ups (跟进记录)
    last_followup_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    next_contact_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    # the customer pool (公海): a customer is owned (私海) or sits in a pool (pool_id set, no owner)
    pool_id: Mapped[int | None] = mapped_column(ForeignKey("crm_pool.id", ondelete="SET NULL"))
    pooled_at: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: since when the current owner has it (claim, assignment, creation): "not won within N days"
    owned_since: Mapped[dt.datetime | None] = mapped_column(DateTime)
    #: a locked customer (锁定) is exempt from recycling and counts against the lock capacity
    locked: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False, server_default=false())
    #: when the pool's rules will take it back, recomputed daily by the worker (warning, workbench);
    #: kept only when that is within the pool's warning days and two more (app.pools.recycle)
    recycle_at: Mapped[dt.datetime | None] = mapped_column(DateTime, index=True)
    # invoicing details (开票信息), copied onto each invoice
    invoice_title: Mapped[str | None] = mapped_column(String(200))
    tax_number: Mapped[str | None] = mapped_column(String(20))
    bank_name: Mapped[str | None] = mapped_column(String(100))
    # --- encryption at rest (app/crypto.py) ---
    bank_account: Mapped[str | None] = mapped_column(EncryptedString(40, "crm_customer.bank_account"))
    invoice_address_phone: Mapped[str | None] = mapped_column(String(255))
    # --- encryption at rest: the ID number and the blind indexes of exact search ---
    #: 身份证号 of an individual customer, stored encrypted; unique through its blind index
    id_number: Mapped[str | None] = mapped_column(EncryptedString(18, "crm_customer.id_number"))
    id_number_bidx: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    bank_account_bidx: Mapped[str | None] = mapped_column(String(64), index=True)
    #: encrypted attribute -> (its blind index, the purpose its HMAC key is derived for)
    __blind_indexes__ = {
        "id_number": ("id_number_bidx", "customer.id_number"),
        "bank_account": ("bank_account_bidx", "customer.bank_account"),
    }

    industry: Mapped[Industry | None] = relationship(Industry)
    province: Mapped[Region | None] = relationship(Region, foreign_keys=[province_code])
    city: Mapped[Region | None] = relationship(Region, foreign_keys=[city_code])
    district: Mapped[Region | None] = relationship(Region, foreign_keys=[district_code])
    owner: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys="Customer.owner_id")
    department: Mapped[Department | None] = relationship(Department, foreign_keys="Customer.department_id")
    created_by: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys="Customer.created_by_id")
    updated_by: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys="Customer.updated_by_id")
    tags: Mapped[list[Tag]] = relationship(Tag, secondary=customer_tag)
    groups: Mapped[list[CustomerGroup]] = relationship(
        CustomerGroup, secondary=customer_group_member, backref="customers"
    )
    contacts: Mapped[list[Contact]] = relationship(
        "Contact", back_populates="customer", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        Index("ix_customer_name", "name"),
        Index("ix_customer_owner_name", "owner_id", "name"),
        Index("ix_customer_department_name", "department_id", "name"),
        # a level within the data scope (the workbench's key customers, list filters): the scope's
        # OR of owner and departments reads these alone. A level-only index made SQLite (no
        # planner statistics) walk every key customer of the company instead.
        Index("ix_customer_owner_level", "owner_id", "level"),
        Index("ix_customer_department_level", "department_id", "level"),
        # the pool screens: a pool's customers newest first, and all pools' (pooled_at is set
        # only while a customer sits in a pool)
        Index("ix_customer_pool_pooled", "pool_id", "pooled_at"),
        Index("ix_customer_pooled_at", "pooled_at"),
        # the home page: recently changed customers
        Index("ix_customer_updated_at", "updated_at", "id"),  # ties in id order (see migration b7a0c0000009)
        # the workbench of a manager: the team's customers to contact by today and new this
        # month, read from the owner's and the departments' index ranges alone
        Index("ix_customer_owner_next_contact", "owner_id", "next_contact_at"),
        Index("ix_customer_department_next_contact", "department_id", "next_contact_at"),
        Index("ix_customer_owner_created", "owner_id", "created_at"),
        Index("ix_customer_department_created", "department_id", "created_at"),
        # the home page: the scope's recently changed customers, per branch of the data scope
        Index("ix_customer_owner_updated", "owner_id", "updated_at", "id"),
        Index("ix_customer_department_updated", "department_id", "updated_at", "id"),
        # the workbench: the scope's customers that their pool takes back soonest
        Index("ix_customer_owner_recycle", "owner_id", "recycle_at"),
        Index("ix_customer_department_recycle", "department_id", "recycle_at"),
    )

    def __str__(self) -> str:
        return self.name

    @property
    def address(self) -> str:
        """The full postal address, as Chinese addresses are written: large to small."""
        parts = [r.name for r in (self.province, self.city, self.district) if r is not None]
        return "".join(dict.fromkeys(parts)) + (self.street or "")

    def kind_label(self) -> str:
        return CUSTOMER_KINDS.label(self.kind)

    def level_label(self) -> str:
        return CUSTOMER_LEVELS.label(self.level)

    def status_label(self) -> str:
        return CUSTOMER_STATUSES.label(self.status)

    def purchase_frequency_label(self) -> str:
        return PURCHASE_FREQUENCIES.label(self.purchase_frequency) if self.purchase_frequency else ""


register_blind_indexes(Customer)


class Contact(TimestampMixin, CustomFieldsMixin, Model):
    """联系人: a person at a customer. Its data scope follows its customer's."""

    __tablename__ = "crm_contact"
    __entity_label__ = lazy_gettext("联系人")

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("crm_customer.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False, index=True)
    title: Mapped[str | None] = mapped_column(String(100))
    mobile: Mapped[str | None] = mapped_column(String(20), index=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    wechat: Mapped[str | None] = mapped_column(String(64))
    gender: Mapped[str | None] = mapped_column(String(10))
    birthday: Mapped[dt.date | None] = mapped_column(Date)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    notes: Mapped[str | None] = mapped_column(Text)

    __scope_parent__ = "customer"

    customer: Mapped[Customer] = relationship(Customer, back_populates="contacts")
    created_by: Mapped[CrmUser | None] = relationship(CrmUser, foreign_keys="Contact.created_by_id")

    def __str__(self) -> str:
        return self.name
