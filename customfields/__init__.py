"""The custom-field engine: definitions as data, values in one JSON column per record.

This issue ships the storage mixin; definitions, validation, forms and filters build on it.
"""

from customfields.mixin import CustomFieldsMixin

__all__ = ["CustomFieldsMixin"]
