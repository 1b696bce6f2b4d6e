"""Field rules (字段权限): which fields of an entity a role may not see, sees masked, or may not change.

The rows are data an admin edits in the browser; app/permissions.py is the one module that reads
them and applies them to screens, the REST API, search and export.
"""

from __future__ import annotations

from flask_appbuilder.security.sqla.models import Role
from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Choices, Model, TimestampMixin

#: What a rule does to its field, least restrictive last: a user with several roles gets, per
#: field, the least restrictive of them (a role without a rule for the field: no restriction)
FIELD_MODES = Choices(
    ("hidden", "隐藏"),
    ("masked", "脱敏 (所有页面)"),
    ("masked_list", "列表中脱敏 (详情页显示原值)"),
    ("read_only", "只读"),
)


class FieldRule(TimestampMixin, Model):
    """One role's rule for one field of one entity (standard column, relation or custom field)."""

    __tablename__ = "crm_field_rule"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role_id: Mapped[int] = mapped_column(
        ForeignKey("ab_role.id", ondelete="CASCADE"), nullable=False, index=True
    )
    #: the entity's name as in the API and custom fields: customer, contact, order...
    entity: Mapped[str] = mapped_column(String(50), nullable=False)
    #: a column or relation name (credit_limit, owner), or custom.<api name> for a custom field
    field: Mapped[str] = mapped_column(String(80), nullable=False)
    mode: Mapped[str] = mapped_column(String(20), nullable=False, default="hidden")

    role: Mapped[Role] = relationship(Role)

    __table_args__ = (UniqueConstraint("role_id", "entity", "field", name="uq_field_rule_role_entity_field"),)

    def __str__(self) -> str:
        return f"{self.role} · {self.entity}.{self.field} · {FIELD_MODES.label(self.mode)}"


class FieldRuleDefault(Model):
    """A built-in default rule that was seeded once: seeding never brings back a rule an admin
    changed or deleted afterwards."""

    __tablename__ = "crm_field_rule_default"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: role name · entity · field
    key: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)
