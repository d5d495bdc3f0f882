"""District scoping: which districts (区/县) a user sees and may change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, false
from sqlalchemy.orm import InstrumentedAttribute

from service.errors import PermissionDeniedError
from service.models import User
from service.vocab import Role

__all__ = ["DistrictScope"]


@dataclass(frozen=True)
class DistrictScope:
    """The districts a user sees: ``codes is None`` means all (admins and city-wide users)."""

    user: User
    codes: frozenset[str] | None

    @classmethod
    def of(cls, user: User) -> DistrictScope:
        if user.all_districts or user.role == Role.admin:
            return cls(user, None)
        return cls(user, frozenset(user.district_codes))

    def allows(self, code: str | None) -> bool:
        if self.codes is None:
            return True
        return code is not None and code in self.codes

    def check(self, code: str | None) -> None:
        """Raise 403 unless the user may write to district ``code``."""
        if not self.allows(code):
            mine = ", ".join(sorted(self.codes or ())) or "none"
            raise PermissionDeniedError(f"district {code!r} is not one of yours ({mine}); ask an administrator")

    def where(self, column: InstrumentedAttribute[Any]) -> ColumnElement[bool] | None:
        """A WHERE clause restricting ``column`` (a district code) to the scope, or None for all."""
        if self.codes is None:
            return None
        if not self.codes:
            return false()
        return column.in_(sorted(self.codes))

    def apply(self, stmt: Select[Any], column: InstrumentedAttribute[Any]) -> Select[Any]:
        clause = self.where(column)
        return stmt if clause is None else stmt.where(clause)
