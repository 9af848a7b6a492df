"""The billing gate: a per-tenant monthly token budget for paid (remote) embedding calls.

The ledger is SQLite so several processes on one host share it safely; the check and the charge are
one transaction, so two workers can never both spend the last of a budget.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from nexus_query.errors import BudgetExceeded


def estimate_tokens(texts: list[str]) -> int:
    """A conservative token estimate (about four characters a token), known before the call."""
    return sum(len(t) // 4 + 1 for t in texts)


class BillingGate:
    def __init__(self, ledger_path: str | Path, budgets: Mapping[str, int]) -> None:
        self.ledger_path = Path(ledger_path)
        self.budgets = dict(budgets)
        self.ledger_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS ledger (tenant TEXT, period TEXT, spent INTEGER, "
                "PRIMARY KEY (tenant, period))"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.ledger_path, timeout=30, isolation_level=None)

    @staticmethod
    def period(now: datetime | None = None) -> str:
        return (now or datetime.now(UTC)).strftime("%Y-%m")

    def budget(self, tenant_id: str) -> int | None:
        return self.budgets.get(tenant_id, self.budgets.get("default"))

    def spent(self, tenant_id: str) -> int:
        with self._connect() as db:
            row = db.execute(
                "SELECT spent FROM ledger WHERE tenant=? AND period=?", (tenant_id, self.period())
            ).fetchone()
        return int(row[0]) if row else 0

    def charge(self, tenant_id: str, tokens: int) -> None:
        """Record ``tokens`` against the tenant, or refuse with ``BudgetExceeded`` and record nothing."""
        budget = self.budget(tenant_id)
        period = self.period()
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT spent FROM ledger WHERE tenant=? AND period=?", (tenant_id, period)
            ).fetchone()
            spent = int(row[0]) if row else 0
            if budget is not None and spent + tokens > budget:
                db.execute("ROLLBACK")
                raise BudgetExceeded(
                    f"embedding budget of tenant {tenant_id!r} for {period} is spent",
                    budget=budget, spent=spent, requested=tokens, period=period,
                )
            db.execute(
                "INSERT INTO ledger (tenant, period, spent) VALUES (?, ?, ?) "
                "ON CONFLICT (tenant, period) DO UPDATE SET spent = spent + excluded.spent",
                (tenant_id, period, tokens),
            )
            db.execute("COMMIT")
        finally:
            db.close()

    def refund(self, tenant_id: str, tokens: int) -> None:
        """Give back a charge whose call failed, so failures cost the tenant nothing."""
        with self._connect() as db:
            db.execute(
                "UPDATE ledger SET spent = MAX(0, spent - ?) WHERE tenant=? AND period=?",
                (tokens, tenant_id, self.period()),
            )
