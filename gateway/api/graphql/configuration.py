"""Operators manage partners, conversion rules and earning rules at run time: each change
is checked in full, recorded with who made it, and applied by every process within seconds."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import strawberry

from gateway.api.graphql.configuration_types import (
    ConfigurationChange,
    ConfigurationPayload,
    CreatePartnerInput,
    EndConversionRuleInput,
    SetConversionRuleInput,
    SetEarningRulesInput,
    UpdatePartnerInput,
)
from gateway.api.graphql.context import Info
from gateway.api.graphql.partner_types import Partner
from gateway.api.graphql.payloads import UserError
from gateway.configuration import edits
from gateway.configuration.documents import State
from gateway.configuration.service import Applied, Edit
from gateway.kernel.errors import DomainError, ErrorCode
from partners.config.coalition import ConfigFiles
from partners.config.conversions import ConversionRule
from partners.config.reader import MAX_POINTS

MAX_CHANGES = 100
# The terms of a rule for a pair that has none yet, where the input leaves them out.
NEW_PAIR = {
    "fee_percent": "0",
    "fee_fixed": 0,
    "min_points": 1,
    "max_points": MAX_POINTS,
    "enabled": True,
}


async def _changed(
    info: Info,
    edit: Edit,
    *,
    partner: str | None,
    dry_run: bool,
    effective_from: datetime | None = None,
) -> ConfigurationPayload:
    try:
        info.context.access.require_operator()
        applied: Applied = await info.context.configuration.change(
            edit,
            info.context.principal.actor,
            dry_run=dry_run,
            effective_from=effective_from,
        )
    except DomainError as error:
        return ConfigurationPayload(user_errors=UserError.of(error))
    change = None
    if applied.change is not None:
        found = await info.context.configuration.changes(1)
        change = ConfigurationChange(record=found[0]) if found else None
    coalition = info.context.service.coalition
    shown = Partner.of(info, partner) if partner in coalition.partners else None
    return ConfigurationPayload(change=change, lines=applied.lines, partner=shown)


@strawberry.type
class ConfigurationQueries:
    @strawberry.field(description="The latest configuration changes, newest first (operators).")
    async def configuration_changes(self, info: Info, first: int = 20) -> list[ConfigurationChange]:
        info.context.access.require_operator()
        found = await info.context.configuration.changes(max(1, min(first, MAX_CHANGES)))
        return [ConfigurationChange(record=record) for record in found]


@strawberry.type
class ConfigurationMutations:
    @strawberry.mutation(description="An operator changes a partner's settings.")
    async def update_partner(
        self, info: Info, input: UpdatePartnerInput
    ) -> ConfigurationPayload | None:
        changes = input.settings.table()

        def edit(_state: State, files: ConfigFiles, _now: datetime) -> ConfigFiles:
            return edits.partner_changed(files, input.partner, changes, create=False)

        return await _changed(
            info,
            edit,
            partner=input.partner,
            dry_run=input.dry_run,
            effective_from=input.effective_from,
        )

    @strawberry.mutation(description="An operator adds a partner (its pool kept here).")
    async def create_partner(
        self, info: Info, input: CreatePartnerInput
    ) -> ConfigurationPayload | None:
        table = input.table()

        def edit(_state: State, files: ConfigFiles, _now: datetime) -> ConfigFiles:
            return edits.partner_changed(files, input.slug, table, create=True)

        return await _changed(info, edit, partner=input.slug, dry_run=input.dry_run)

    @strawberry.mutation(
        description="An operator sets a conversion rate from a moment on (now by default). "
        "Conversions made before keep the rate they used."
    )
    async def set_conversion_rule(
        self, info: Info, input: SetConversionRuleInput
    ) -> ConfigurationPayload | None:
        given = input.terms()

        def edit(_state: State, files: ConfigFiles, now: datetime) -> ConfigFiles:
            start = input.effective_from or now
            current = edits.rule_in_force(files, input.from_partner, input.to_partner, start)
            terms = {**NEW_PAIR, **(current or {}), **given}
            rule = ConversionRule(
                source=input.from_partner,
                target=input.to_partner,
                rate=Decimal(terms["rate"]),
                fee_percent=Decimal(terms["fee_percent"]),
                fee_fixed=terms["fee_fixed"],
                min_points=terms["min_points"],
                max_points=terms["max_points"],
                enabled=terms["enabled"],
                effective_from=start,
                effective_until=input.effective_until,
            )
            return edits.rule_set(files, rule)

        return await _changed(
            info,
            edit,
            partner=input.from_partner,
            dry_run=input.dry_run,
            effective_from=input.effective_from,
        )

    @strawberry.mutation(description="An operator ends a conversion rule (now by default).")
    async def end_conversion_rule(
        self, info: Info, input: EndConversionRuleInput
    ) -> ConfigurationPayload | None:
        def edit(state: State, files: ConfigFiles, now: datetime) -> ConfigFiles:
            at = input.at or now
            for stored in state.rules:
                rule = stored.rule
                if (
                    stored.live
                    and (rule.source, rule.target) == (input.from_partner, input.to_partner)
                    and rule.effective_from == input.effective_from
                ):
                    return edits.rule_ended(files, rule, at)
            raise DomainError(
                ErrorCode.NO_CONVERSION_RULE,
                "No such conversion rule: name it by its partners and its start.",
                ("effective_from",),
            )

        return await _changed(
            info, edit, partner=input.from_partner, dry_run=input.dry_run, effective_from=input.at
        )

    @strawberry.mutation(description="An operator replaces a partner's earning rules.")
    async def set_earning_rules(
        self, info: Info, input: SetEarningRulesInput
    ) -> ConfigurationPayload | None:
        table = input.rules.table()

        def edit(_state: State, files: ConfigFiles, _now: datetime) -> ConfigFiles:
            return edits.earning_set(files, input.partner, table)

        return await _changed(
            info,
            edit,
            partner=input.partner,
            dry_run=input.dry_run,
            effective_from=input.effective_from,
        )
