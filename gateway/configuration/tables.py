"""The configuration's tables (migration 0018): every change with who made it, the
documents (``coalition`` and one per partner) in their versions, and the conversion rules."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from gateway.kernel.schema import BigId, Moment


class ConfigurationChange(SQLModel, table=True):
    """One change: applied from files (``apply``), made through the API (``api``), or the
    first import of a new database (``bootstrap``)."""

    __tablename__ = "configuration_changes"

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    changed_at: datetime = Field(sa_type=Moment)
    changed_by: str = Field(max_length=200)
    source: str = Field(max_length=16)
    summary: str = Field(max_length=4000)


class ConfigurationDocument(SQLModel, table=True):
    """A version of ``coalition.toml`` or of a partner's file (without its conversion rules),
    as TOML; the version in force is the latest that has taken effect."""

    __tablename__ = "configuration_documents"
    __table_args__ = (sa.Index("ix_configuration_documents_name", "name", "effective_from"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    change_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("configuration_changes.id"), nullable=False)
    )
    name: str = Field(max_length=32)  # "coalition" or a partner's slug
    effective_from: datetime = Field(sa_type=Moment)
    body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))


class ConversionRuleRow(SQLModel, table=True):
    """A directed conversion rule. A rule's terms never change once written: a new rate is a
    new rule, and the one before it ends (``ended_by``) when the new one starts; a rule that
    had not started yet can be withdrawn (``withdrawn_by``) and stays in the history."""

    __tablename__ = "conversion_rules"
    __table_args__ = (sa.Index("ix_conversion_rules_pair", "source", "target"),)

    id: int | None = Field(default=None, sa_column=sa.Column(BigId, primary_key=True))
    change_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("configuration_changes.id"), nullable=False)
    )
    source: str = Field(max_length=32)
    target: str = Field(max_length=32)
    rate: str = Field(max_length=40)
    fee_percent: str = Field(max_length=40)
    fee_fixed: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    min_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    max_points: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    enabled: bool
    effective_from: datetime = Field(sa_type=Moment)
    effective_until: datetime | None = Field(default=None, sa_type=Moment)
    ended_by: int | None = Field(
        default=None,
        sa_column=sa.Column(BigId, sa.ForeignKey("configuration_changes.id"), nullable=True),
    )
    withdrawn_by: int | None = Field(
        default=None,
        sa_column=sa.Column(BigId, sa.ForeignKey("configuration_changes.id"), nullable=True),
    )
