"""Settings screens for the organisation: departments and each role's data scope."""

from __future__ import annotations

from flask_babel import lazy_gettext as _

from models.security import DATA_SCOPES, Department, RoleDataScope
from views.base import CrmInterface, CrmModelApi, CrmModelView


class DepartmentView(CrmModelView):
    datamodel = CrmInterface(Department)
    list_title = _("部门")
    label_columns = {
        "name": _("部门名称"),
        "parent": _("上级部门"),
        "leader": _("负责人"),
        "position": _("排序"),
        "children": _("下级部门"),
    }
    list_columns = ["name", "parent", "leader", "position"]
    show_columns = ["name", "parent", "leader", "children", "position"]
    add_columns = edit_columns = ["name", "parent", "leader", "position"]
    base_order = ("position", "asc")


class RoleDataScopeView(CrmModelView):
    """数据权限: which rows each role sees ('*' = every entity unless overridden)."""

    datamodel = CrmInterface(RoleDataScope)
    list_title = _("数据权限")
    label_columns = {"role": _("角色"), "entity": _("对象 (* 为全部)"), "scope": _("数据范围")}
    list_columns = add_columns = edit_columns = ["role", "entity", "scope"]
    formatters_columns = {"scope": DATA_SCOPES.label}


class DepartmentApi(CrmModelApi):
    resource_name = "department"
    datamodel = CrmInterface(Department)
    list_columns = show_columns = ["id", "name", "parent_id", "leader_id", "position"]
    add_columns = edit_columns = ["name", "parent", "leader", "position"]


class RoleDataScopeApi(CrmModelApi):
    resource_name = "data_scope"
    datamodel = CrmInterface(RoleDataScope)
    list_columns = show_columns = ["id", "role.id", "role.name", "entity", "scope"]
    add_columns = edit_columns = ["role", "entity", "scope"]
