"""All of KeGuan's models; importing this package registers every table on Model.metadata."""

from customfields.definitions import CustomField  # also registers CustomFieldVersion
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
from models.sales import Interaction, Lead, Opportunity, Pipeline, Product, Stage, StageChange, Task
from models.security import CrmUser, Department, RoleDataScope

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
    "Notification",
    "OutboxMessage",
    "CrmUser",
    "Department",
    "RoleDataScope",
]
