"""All of KeGuan's models; importing this package registers every table on Model.metadata."""

from customfields.definitions import CustomField  # also registers CustomFieldVersion
from models.analytics import DashboardSubscription
from models.approvals import ApprovalDecision, ApprovalFlow, ApprovalRequest, ApprovalStep
from models.audit import AuditHead, AuditLog  # noqa: F401  (audit: not an entity, see models/audit.py)
from models.base import Model
from models.customers import (
    Contact,
    Customer,
    CustomerGroup,
    Industry,
    Region,
    Tag,
)
from models.notifications import Notification, OutboxMessage
from models.orders import Invoice, Order, OrderLine, Payment, PaymentPlan, SalesTarget
from models.permissions import FieldRule  # field permissions (字段权限); also registers FieldRuleDefault
from models.pools import CustomerPool, CustomerTeamMember, PoolMove, PoolRule
from models.sales import Interaction, Lead, Opportunity, Pipeline, Product, Stage, StageChange, Task
from models.security import CrmUser, Department, RoleDataScope
from models.service import (
    AssignmentRule,
    BusinessHours,
    ServiceCalendarDay,
    SlaPolicy,
    Survey,
    Ticket,
    TicketAttachment,
    TicketCategory,
    TicketComment,
    TicketStatusChange,
)

__all__ = [
    "Model",
    "CustomField",
    "Contact",
    "Customer",
    "CustomerGroup",
    "Industry",
    "Region",
    "Tag",
    "Interaction",
    "Lead",
    "Opportunity",
    "Pipeline",
    "Product",
    "Stage",
    "StageChange",
    "Task",
    "DashboardSubscription",
    "AssignmentRule",
    "BusinessHours",
    "ServiceCalendarDay",
    "SlaPolicy",
    "Survey",
    "Ticket",
    "TicketAttachment",
    "TicketCategory",
    "TicketComment",
    "TicketStatusChange",
    "ApprovalDecision",
    "ApprovalFlow",
    "ApprovalRequest",
    "ApprovalStep",
    "Invoice",
    "Order",
    "OrderLine",
    "Payment",
    "PaymentPlan",
    "SalesTarget",
    "CustomerPool",
    "CustomerTeamMember",
    "PoolMove",
    "PoolRule",
    "Notification",
    "OutboxMessage",
    "CrmUser",
    "Department",
    "RoleDataScope",
    "FieldRule",
]
