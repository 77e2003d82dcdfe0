"""Coupon templates and host budgets: issuing, editing and the status life cycle.

Operators issue any template. A host issues only against a budget an operator assigned to them: the
template's worst-case cost (stock × its largest discount) is committed on the budget with one conditional
update, and the unclaimed part is given back when the template ends. A budget tied to a group puts that
group on the template; otherwise a host may name one of the groups they host. Group ownership is checked
through the groups domain.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from app.accounts import service as accounts
from app.catalog import service as catalog
from app.core.access import Actor
from app.core.clock import now_utc
from app.core.db import after_commit, after_rollback, db, use_case
from app.core.errors import Conflict, Forbidden, Invalid, NotFound
from app.core.http import MAX_ID
from app.core.jobs import batch_job
from app.core.pagination import keyset_page
from app.coupons.flash import drain, gate, loading
from app.coupons.models import CouponBudget, CouponTemplate, CouponTemplateScope
from app.coupons.pricing import CouponRule
from app.groups import service as groups

TRANSITIONS = {
    "draft": {"active", "ended"},
    "active": {"paused", "ended"},
    "paused": {"active", "ended"},
    "ended": set(),
}
RULE_FIELDS = ("kind", "amount_off_fen", "threshold_fen", "percent_off_bp", "cap_fen", "scope")
EDITABLE = RULE_FIELDS + (
    "name",
    "description",
    "validity_kind",
    "valid_from",
    "valid_until",
    "valid_days",
    "claim_starts_at",
    "claim_ends_at",
    "stock",
    "per_user_limit",
    "per_day_limit",
    "claim_gate",
    "group_id",
)
ENDING_DRAIN_SECONDS = 30
SCOPE_LISTS = {
    "category_ids": ("category", False),
    "product_ids": ("product", False),
    "excluded_category_ids": ("category", True),
    "excluded_product_ids": ("product", True),
}


def unit_liability_fen(template: CouponTemplate) -> int:
    """The most one coupon of this template can take off an order."""
    return template.cap_fen if template.kind == "percent" else template.amount_off_fen


def rule_of(template: CouponTemplate) -> CouponRule:
    """The pricing rule of a template (scope rows included)."""
    rows = db.session.scalars(select(CouponTemplateScope).where(CouponTemplateScope.template_id == template.id)).all()

    def pick(target, excluded):
        return frozenset(r.target_id for r in rows if r.target == target and r.excluded == excluded)

    return CouponRule(
        kind=template.kind,
        amount_off_fen=template.amount_off_fen,
        threshold_fen=template.threshold_fen,
        percent_off_bp=template.percent_off_bp,
        cap_fen=template.cap_fen,
        scope=template.scope,
        category_ids=pick("category", False),
        product_ids=pick("product", False),
        excluded_category_ids=pick("category", True),
        excluded_product_ids=pick("product", True),
    )


def scope_lists(template: CouponTemplate) -> dict[str, list[int]]:
    """The template's scope as the four id lists the API speaks."""
    rule = rule_of(template)
    return {
        "category_ids": sorted(rule.category_ids),
        "product_ids": sorted(rule.product_ids),
        "excluded_category_ids": sorted(rule.excluded_category_ids),
        "excluded_product_ids": sorted(rule.excluded_product_ids),
    }


def get_template(*, template_id: int) -> CouponTemplate:
    """Load a template or fail with 404 `coupon_not_found`."""
    template = db.session.get(CouponTemplate, template_id) if 0 < template_id <= MAX_ID else None
    if template is None:
        raise NotFound("No such coupon.", code="coupon_not_found")
    return template


def _visible_to(template: CouponTemplate, actor: Actor) -> None:
    if not actor.operator and template.issuer_id != actor.id:
        raise NotFound("No such coupon template.", code="coupon_not_found")


def get_template_for(*, template_id: int, actor: Actor) -> CouponTemplate:
    """A template its issuer (or an operator) may manage."""
    template = get_template(template_id=template_id)
    _visible_to(template, actor)
    return template


def _bad(field: str, message: str, code: str = "invalid_coupon_template") -> Invalid:
    return Invalid(message, code=code, errors={field: [message]})


def _validate(values: dict[str, Any], scope_ids: dict[str, list[int]]) -> None:
    kind = values["kind"]
    if kind in ("fixed", "threshold") and values.get("amount_off_fen", 0) <= 0:
        raise _bad("amount_off_fen", "Fixed and threshold coupons need amount_off_fen > 0.")
    if kind == "threshold" and values.get("threshold_fen", 0) < max(1, values.get("amount_off_fen", 0)):
        raise _bad("threshold_fen", "A threshold coupon needs threshold_fen ≥ amount_off_fen (spend X, save Y ≤ X).")
    if kind == "percent":
        if not 1 <= values.get("percent_off_bp", 0) <= 9999:
            raise _bad("percent_off_bp", "A percent coupon needs percent_off_bp between 1 and 9999.")
        if values.get("cap_fen", 0) <= 0:
            raise _bad("cap_fen", "A percent coupon needs a cap (cap_fen > 0).")
    if values["validity_kind"] == "window":
        if values.get("valid_from") is None or values.get("valid_until") is None:
            raise _bad("valid_until", "A window validity needs valid_from and valid_until.")
        if values["valid_until"] <= values["valid_from"]:
            raise _bad("valid_until", "valid_until must be after valid_from.")
        if values["claim_starts_at"] >= values["valid_until"]:
            raise _bad("claim_starts_at", "Claims must open before the coupons stop being valid.")
    elif not values.get("valid_days"):
        raise _bad("valid_days", "A days validity needs valid_days ≥ 1.")
    if values["claim_ends_at"] <= values["claim_starts_at"]:
        raise _bad("claim_ends_at", "claim_ends_at must be after claim_starts_at.")
    if values.get("per_day_limit") and values["per_day_limit"] > values["per_user_limit"]:
        raise _bad("per_day_limit", "per_day_limit cannot exceed per_user_limit.")
    scope = values["scope"]
    if scope == "categories" and not scope_ids["category_ids"]:
        raise _bad("category_ids", "A categories scope needs at least one category.")
    if scope == "products" and not scope_ids["product_ids"]:
        raise _bad("product_ids", "A products scope needs at least one product.")
    if scope != "categories" and scope_ids["category_ids"]:
        raise _bad("category_ids", "category_ids only apply to a categories scope.")
    if scope != "products" and scope_ids["product_ids"]:
        raise _bad("product_ids", "product_ids only apply to a products scope.")
    if scope == "products" and scope_ids["excluded_product_ids"]:
        raise _bad("excluded_product_ids", "A products scope lists what it includes; exclusions do not apply.")
    if set(scope_ids["category_ids"]) & set(scope_ids["excluded_category_ids"]):
        raise _bad("excluded_category_ids", "A category cannot be both included and excluded.")
    catalog.require_categories(category_ids=scope_ids["category_ids"] + scope_ids["excluded_category_ids"])
    catalog.require_products(product_ids=scope_ids["product_ids"] + scope_ids["excluded_product_ids"])


def _normalise(values: dict[str, Any]) -> dict[str, Any]:
    """Zero the fields a kind or validity does not use, so stored rows say only what applies."""
    values = dict(values)
    if values["kind"] != "percent":
        values["percent_off_bp"], values["cap_fen"] = 0, 0
    else:
        values["amount_off_fen"] = 0
    if values["validity_kind"] == "window":
        values["valid_days"] = None
    else:
        values["valid_from"], values["valid_until"] = None, None
    return values


def _write_scopes(template_id: int, scope_ids: dict[str, list[int]]) -> None:
    db.session.execute(CouponTemplateScope.__table__.delete().where(CouponTemplateScope.template_id == template_id))
    for name, (target, excluded) in SCOPE_LISTS.items():
        for target_id in sorted(set(scope_ids[name])):
            db.session.add(
                CouponTemplateScope(template_id=template_id, target=target, target_id=target_id, excluded=excluded)
            )


def _commit_budget(budget_id: int, delta_fen: int) -> None:
    """Move a budget's committed amount by `delta_fen`, refusing to pass the budget (one conditional update)."""
    if delta_fen == 0:
        return
    moved = db.session.execute(
        update(CouponBudget)
        .where(
            CouponBudget.id == budget_id,
            CouponBudget.committed_fen + delta_fen <= CouponBudget.budget_fen,
            CouponBudget.committed_fen + delta_fen >= 0,
        )
        .values(committed_fen=CouponBudget.committed_fen + delta_fen)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        budget = db.session.get(CouponBudget, budget_id)
        raise Conflict(
            "This template would cost more than the budget has left.",
            code="coupon_budget_exceeded",
            errors={"needed_fen": delta_fen, "left_fen": budget.budget_fen - budget.committed_fen},
        )


def _check_group(group_id: int | None, *, host_id: int | None) -> None:
    """The group exists and, when a host is named, that host runs it (404 / 403 from the groups domain)."""
    if group_id is None:
        return
    if host_id is None:
        groups.group_brief(group_id=group_id)
    else:
        groups.get_group(group_id=group_id, actor=groups.Actor(id=host_id, operator=False))


def _budget_for(*, budget_id: int | None, actor: Actor) -> CouponBudget | None:
    if budget_id is None:
        if not actor.operator:
            raise Invalid(
                "Hosts issue coupons against a budget: send budget_id.",
                code="coupon_budget_required",
                errors={"budget_id": ["Required for hosts."]},
            )
        return None
    budget = db.session.get(CouponBudget, budget_id) if 0 < budget_id <= MAX_ID else None
    if budget is None:
        raise NotFound("No such coupon budget.", code="coupon_budget_not_found")
    if not actor.operator and budget.host_id != actor.id:
        raise Forbidden("This budget was not assigned to you.", code="coupon_budget_not_yours")
    return budget


def create_template(
    *, actor: Actor, values: dict[str, Any], scope_ids: dict[str, list[int]], budget_id: int | None
) -> CouponTemplate:
    """Issue a template in draft; a host's draws its worst-case cost from their budget."""
    values = _normalise(values)
    _validate(values, scope_ids)
    budget = _budget_for(budget_id=budget_id, actor=actor)
    if budget is not None and budget.group_id is not None:
        values["group_id"] = budget.group_id
    else:
        _check_group(values.get("group_id"), host_id=None if actor.operator else actor.id)
    now = now_utc()
    template = CouponTemplate(
        **values,
        status="draft",
        issuer_id=actor.id,
        claimed=0,
        budget_id=budget.id if budget else None,
        created_at=now,
        updated_at=now,
    )
    db.session.add(template)
    db.session.flush()
    if budget is not None:
        template.budget_committed_fen = template.stock * unit_liability_fen(template)
        _commit_budget(budget.id, template.budget_committed_fen)
    _write_scopes(template.id, scope_ids)
    db.session.flush()
    return template


def update_template(
    *, template_id: int, actor: Actor, changes: dict[str, Any], scope_ids: dict[str, list[int]] | None
) -> CouponTemplate:
    """Edit a draft (live templates only change status, so claims never see a moving target)."""
    template = get_template_for(template_id=template_id, actor=actor)
    if template.status != "draft":
        raise Conflict("Only draft templates can be edited.", code="coupon_template_not_editable")
    budget = db.session.get(CouponBudget, template.budget_id) if template.budget_id else None
    if budget is not None and budget.group_id is not None:
        changes.pop("group_id", None)
    elif "group_id" in changes:
        _check_group(changes["group_id"], host_id=None if actor.operator else actor.id)
    values = {name: getattr(template, name) for name in EDITABLE} | changes
    values = _normalise(values)
    current_scopes = scope_lists(template)
    merged_scopes = current_scopes | (scope_ids or {})
    _validate(values, merged_scopes)
    # Conditional on what was read: an activation committed since must not see its live rules change under
    # its gate, and a concurrent edit must not move the budget by a delta computed from a stale commitment.
    read_committed = template.budget_committed_fen
    moved = db.session.execute(
        update(CouponTemplate)
        .where(
            CouponTemplate.id == template.id,
            CouponTemplate.status == "draft",
            CouponTemplate.budget_committed_fen == read_committed,
        )
        .values(**values, updated_at=now_utc())
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(template)
    if not moved:
        if template.status != "draft":
            raise Conflict("Only draft templates can be edited.", code="coupon_template_not_editable")
        raise Conflict("The template changed meanwhile; reload it.", code="coupon_template_changed")
    if template.budget_id is not None:
        new_committed = template.stock * unit_liability_fen(template)
        _commit_budget(template.budget_id, new_committed - read_committed)
        template.budget_committed_fen = new_committed
    if merged_scopes != current_scopes:
        _write_scopes(template.id, merged_scopes)
    db.session.flush()
    return template


def _release_unclaimed(template: CouponTemplate) -> None:
    """Give the unclaimed part of an ended host template's cost back to its budget."""
    if template.budget_id is not None:
        keep = template.claimed * unit_liability_fen(template)
        _commit_budget(template.budget_id, keep - template.budget_committed_fen)
        template.budget_committed_fen = keep


def change_status(*, template_id: int, actor: Actor, status: str) -> CouponTemplate:
    """Move a template along draft → active ⇄ paused → ended (asking for the current status is a no-op)."""
    template = get_template_for(template_id=template_id, actor=actor)
    if status == template.status:
        return template
    if status not in TRANSITIONS[template.status]:
        raise Conflict(
            f"A {template.status} template cannot become {status}.",
            code="invalid_status_transition",
            errors={"from": template.status, "to": status},
        )
    if status == "active" and template.claim_ends_at <= now_utc():
        raise Conflict("The claim window has passed; this template can only end.", code="coupon_claim_window_passed")
    gated = template.claim_gate == "redis"
    if status == "ended" and gated:
        # Stop granting, then land every grant (in this use case), so the budget release below counts them all.
        gate.close(template_id=template.id, state="ended")
        drain.drain(wait_seconds=ENDING_DRAIN_SECONDS)
    moved = db.session.execute(
        update(CouponTemplate)
        .where(CouponTemplate.id == template.id, CouponTemplate.status == template.status)
        .values(status=status, updated_at=now_utc())
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        if gated:
            # The end did not happen: rebuilds follow the database again, and once this use case has rolled
            # back (the grants it landed go back to the stream), the gate is rebuilt from what is committed.
            gate.end_abandoned(template_id=template.id)
            after_rollback(lambda: loading.load_gate(template_id=template_id))
        raise Conflict("The template changed meanwhile; reload it.", code="coupon_template_changed")
    db.session.refresh(template)
    if status == "ended":
        _release_unclaimed(template)
    db.session.flush()
    if status == "ended":
        after_commit(lambda: gate.drop(template_id=template_id))
    elif status == "paused":
        after_commit(lambda: gate.close(template_id=template_id, state="paused"))
    elif status == "active" and gated:
        after_commit(lambda: loading.load_gate(template_id=template_id))
    return template


@batch_job
def end_finished_templates() -> int:
    """End live templates whose claim window has passed, each a use case of its own (a scheduled job)."""
    ids = db.session.scalars(
        select(CouponTemplate.id).where(
            CouponTemplate.status.in_(("active", "paused")), CouponTemplate.claim_ends_at <= now_utc()
        )
    ).all()
    if not ids:
        return 0
    # Past their window the gates grant nothing more; land what they granted before the budgets settle.
    for template_id in ids:
        gate.close(template_id=template_id, state="ended")
    drain.drain(wait_seconds=ENDING_DRAIN_SECONDS)
    for template_id in ids:
        with use_case():
            moved = db.session.execute(
                update(CouponTemplate)
                .where(CouponTemplate.id == template_id, CouponTemplate.status.in_(("active", "paused")))
                .values(status="ended", updated_at=now_utc())
                .execution_options(synchronize_session=False)
            ).rowcount
            if moved:
                _release_unclaimed(db.session.get(CouponTemplate, template_id, populate_existing=True))
            after_commit(lambda template_id=template_id: gate.drop(template_id=template_id))
    return len(ids)


def list_templates(
    *, actor: Actor, status: str | None, cursor: str | None, limit: int
) -> tuple[list[CouponTemplate], str | None]:
    """Templates the actor manages (operators: all), newest first."""
    stmt = select(CouponTemplate)
    if not actor.operator:
        stmt = stmt.where(CouponTemplate.issuer_id == actor.id)
    if status:
        stmt = stmt.where(CouponTemplate.status == status)
    return keyset_page(
        stmt,
        columns=[CouponTemplate.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda t: (t.id,),
        session=db.session,
    )


def create_budget(*, operator_id: int, host_id: int, group_id: int | None, budget_fen: int, note: str) -> CouponBudget:
    """Assign a host a coupon budget (optionally tied to one of their groups)."""
    host = accounts.get_user(user_id=host_id) if 0 < host_id <= MAX_ID else None
    if host is None or "host" not in accounts.roles_of(host):
        raise Invalid(
            "Budgets go to users holding the host role.", code="budget_needs_host", errors={"host_id": ["Not a host."]}
        )
    _check_group(group_id, host_id=host_id)
    budget = CouponBudget(
        host_id=host_id,
        group_id=group_id,
        budget_fen=budget_fen,
        committed_fen=0,
        note=note,
        created_by_id=operator_id,
        created_at=now_utc(),
    )
    db.session.add(budget)
    db.session.flush()
    return budget


def change_budget(*, budget_id: int, budget_fen: int) -> CouponBudget:
    """Raise or lower a budget; never below what its templates already committed."""
    budget = db.session.get(CouponBudget, budget_id) if 0 < budget_id <= MAX_ID else None
    if budget is None:
        raise NotFound("No such coupon budget.", code="coupon_budget_not_found")
    moved = db.session.execute(
        update(CouponBudget)
        .where(CouponBudget.id == budget_id, CouponBudget.committed_fen <= budget_fen)
        .values(budget_fen=budget_fen)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not moved:
        raise Conflict(
            "The budget cannot go below what is already committed.",
            code="coupon_budget_below_committed",
            errors={"committed_fen": budget.committed_fen},
        )
    db.session.refresh(budget)
    return budget


def list_budgets(*, actor: Actor, cursor: str | None, limit: int) -> tuple[list[CouponBudget], str | None]:
    """Budgets the actor may draw on (operators: all), newest first."""
    stmt = select(CouponBudget)
    if not actor.operator:
        stmt = stmt.where(CouponBudget.host_id == actor.id)
    return keyset_page(
        stmt,
        columns=[CouponBudget.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda b: (b.id,),
        session=db.session,
    )


def claim_window_state(template: CouponTemplate, at: datetime) -> str:
    """'claimable', 'not_started', 'ended', 'paused', 'draft' or 'out_of_stock' as a claimer sees it."""
    if template.status in ("draft", "paused", "ended"):
        return template.status
    if at < template.claim_starts_at:
        return "not_started"
    if at >= template.claim_ends_at or (template.valid_until is not None and at >= template.valid_until):
        return "ended"
    if template.claimed >= template.stock:
        return "out_of_stock"
    return "claimable"
