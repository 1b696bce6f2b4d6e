"""Approvals (审批): the engine that sends documents through the flows an admin configures.

A kind of document (orders and contracts, collections, invoices) registers itself once with
`register_document()`, saying how to title it, what amount it carries, how to read a field for
a flow's conditions, and what happens to the document's own status when it is submitted,
approved, rejected or sent back. The engine knows nothing else about documents.

`submit()` picks the first active flow whose conditions hold; no flow means the document is
approved at once (a small company need not configure any).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from models.approvals import ApprovalRequest
from models.base import utcnow
from models.security import CrmUser


@dataclass(frozen=True)
class DocumentKind:
    """How the engine treats one kind of document (registered by its domain's service)."""

    name: str  # "order", "payment", "invoice" (APPROVAL_DOCUMENTS)
    model: type
    title: Callable[[Any], str]
    amount: Callable[[Any], Decimal | None]
    #: the value a flow condition names: a column, a computed figure or "custom.<api_name>"
    field_value: Callable[[Any, str], Any]
    #: status changes of the document itself; each runs in the caller's transaction
    on_submitted: Callable[[Session, Any], None]
    on_approved: Callable[[Session, Any, dt.datetime], None]
    #: returned=True: sent back to the submitter to change and submit again
    on_rejected: Callable[[Session, Any, str, bool], None]


DOCUMENT_KINDS: dict[str, DocumentKind] = {}


def register_document(kind: DocumentKind) -> None:
    DOCUMENT_KINDS[kind.name] = kind


def submit(session: Session, document: str, record: Any, actor: CrmUser) -> ApprovalRequest | None:
    """Send a document for approval. Returns the request, or None when no flow applies and the
    document was approved at once. The caller commits."""
    kind = DOCUMENT_KINDS[document]
    kind.on_submitted(session, record)
    kind.on_approved(session, record, utcnow())  # until flows exist: approved at once
    return None
