"""All of KeGuan's models; importing this package registers every table on Model.metadata."""

from models.base import Model
from models.customers import (
    Contact,
    Customer,
    CustomerGroup,
    Industry,
    Region,
    Tag,
)
from models.security import CrmUser, Department, RoleDataScope

__all__ = [
    "Model",
    "Contact",
    "Customer",
    "CustomerGroup",
    "Industry",
    "Region",
    "Tag",
    "CrmUser",
    "Department",
    "RoleDataScope",
]
