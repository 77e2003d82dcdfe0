from flask import current_app, g, request
from flask_smorest import Blueprint

from app.core import access
from app.core.errors import ApiError, Conflict, envelope
from app.core.idempotency import HEADER, MAX_KEY_LENGTH, idempotent
from app.core.pagination import PageArgsSchema, compact_json
from app.coupons import cards, claims, refusals, templates, wallet
from app.coupons.schemas import (
    BestArgsSchema,
    BestCouponSchema,
    BudgetChangeSchema,
    BudgetCreateSchema,
    BudgetPageSchema,
    BudgetSchema,
    CardArgsSchema,
    CardSchema,
    ClaimSchema,
    MyCouponsArgsSchema,
    PublicTemplatePageSchema,
    PublicTemplateSchema,
    RefusalListArgsSchema,
    RefusalPageSchema,
    RefusalResolutionSchema,
    RefusalResolveSchema,
    TemplateCreateSchema,
    TemplateFieldsSchema,
    TemplateListArgsSchema,
    TemplatePageSchema,
    TemplateSchema,
    TemplateStatusSchema,
    UserCouponPageSchema,
    UserCouponSchema,
)

manage = Blueprint(
    "coupon_templates",
    __name__,
    url_prefix="/api/v1",
    description="Issuing coupons: operators freely, hosts within their budgets.",
)
blp = Blueprint("coupons", __name__, url_prefix="/api/v1", description="Claiming and holding coupons; coupon cards.")

SCOPE_KEYS = tuple(templates.SCOPE_LISTS)
DATETIME_FIELDS = ("valid_from", "valid_until", "claimed_at", "used_at")


def _template_out(template) -> dict:
    out = {name: getattr(template, name) for name in TemplateSchema._declared_fields if hasattr(template, name)}
    return out | templates.scope_lists(template)


def _split(args: dict) -> tuple[dict, dict]:
    scopes = {k: args.pop(k) for k in SCOPE_KEYS if k in args}
    return args, scopes


def _public(template, shown: tuple[str, int]) -> dict:
    state, left = shown
    return {
        name: getattr(template, name) for name in PublicTemplateSchema._declared_fields if hasattr(template, name)
    } | {"headline": cards.headline(template), "state": state, "stock_left": left}


def _coupon_out(coupon, template) -> dict:
    return {
        "id": coupon.id,
        "template_id": template.id,
        "name": template.name,
        "headline": cards.headline(template),
        "kind": template.kind,
        "amount_off_fen": template.amount_off_fen,
        "threshold_fen": template.threshold_fen,
        "percent_off_bp": template.percent_off_bp,
        "cap_fen": template.cap_fen,
        "scope": template.scope,
        "status": wallet.display_status(coupon),
        "valid_from": coupon.valid_from,
        "valid_until": coupon.valid_until,
        "claimed_at": coupon.claimed_at,
        "used_at": coupon.used_at,
        "reserved_order_id": coupon.reserved_order_id,
        "origin_share_code": coupon.origin_share_code,
        "origin_group_id": coupon.origin_group_id,
        "origin_post_id": coupon.origin_post_id,
    }


@manage.route("/coupon-templates", methods=["POST"])
@access.roles("host")
@manage.arguments(TemplateCreateSchema)
@manage.response(201, TemplateSchema)
def create_template(args):
    """Issue a coupon template (draft). Hosts must name a budget an operator assigned to them."""
    budget_id = args.pop("budget_id")
    values, scopes = _split(args)
    scopes = {k: scopes.get(k) or [] for k in SCOPE_KEYS}
    template = templates.create_template(
        actor=access.current_actor(), values=values, scope_ids=scopes, budget_id=budget_id
    )
    return _template_out(template)


@manage.route("/coupon-templates", methods=["GET"])
@access.roles("host")
@manage.arguments(TemplateListArgsSchema, location="query")
@manage.response(200, TemplatePageSchema)
def list_templates(args):
    """Templates you issued (operators: all), newest first."""
    items, next_cursor = templates.list_templates(
        actor=access.current_actor(), status=args["status"], cursor=args["cursor"], limit=args["limit"]
    )
    return {"items": [_template_out(t) for t in items], "next_cursor": next_cursor}


@manage.route("/coupon-templates/<int:template_id>", methods=["GET"])
@access.roles("host")
@manage.response(200, TemplateSchema)
def get_template(template_id: int):
    """One template you issued (operators: any)."""
    return _template_out(templates.get_template_for(template_id=template_id, actor=access.current_actor()))


@manage.route("/coupon-templates/<int:template_id>", methods=["PATCH"])
@access.roles("host")
@manage.arguments(TemplateFieldsSchema)
@manage.response(200, TemplateSchema)
def update_template(args, template_id: int):
    """Edit a draft template (send only the fields to change; a scope list replaces the old one)."""
    changes, scopes = _split(args)
    scopes = {k: v or [] for k, v in scopes.items()}
    template = templates.update_template(
        template_id=template_id, actor=access.current_actor(), changes=changes, scope_ids=scopes or None
    )
    return _template_out(template)


@manage.route("/coupon-templates/<int:template_id>/status", methods=["POST"])
@access.roles("host")
@manage.arguments(TemplateStatusSchema)
@manage.response(200, TemplateSchema)
def change_status(args, template_id: int):
    """Activate, pause, resume or end a template."""
    return _template_out(
        templates.change_status(template_id=template_id, actor=access.current_actor(), status=args["status"])
    )


@manage.route("/coupon-budgets", methods=["POST"])
@access.roles("operator")
@manage.arguments(BudgetCreateSchema)
@manage.response(201, BudgetSchema)
def create_budget(args):
    """Assign a host a budget of coupon face value (optionally for one group)."""
    return templates.create_budget(operator_id=g.user.id, **args)


@manage.route("/coupon-budgets/<int:budget_id>", methods=["PATCH"])
@access.roles("operator")
@manage.arguments(BudgetChangeSchema)
@manage.response(200, BudgetSchema)
def change_budget(args, budget_id: int):
    """Raise or lower a host's budget (never below what is committed)."""
    return templates.change_budget(budget_id=budget_id, budget_fen=args["budget_fen"])


@manage.route("/coupon-budgets", methods=["GET"])
@access.roles("host")
@manage.arguments(PageArgsSchema, location="query")
@manage.response(200, BudgetPageSchema)
def list_budgets(args):
    """Budgets you may issue coupons against (operators: all)."""
    items, next_cursor = templates.list_budgets(
        actor=access.current_actor(), cursor=args["cursor"], limit=args["limit"]
    )
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/coupons", methods=["GET"])
@access.authenticated
@blp.arguments(PageArgsSchema, location="query")
@blp.response(200, PublicTemplatePageSchema)
def coupon_centre(args):
    """Live coupons to claim now or soon (the coupon centre)."""
    items, next_cursor = claims.claimable_templates(cursor=args["cursor"], limit=args["limit"])
    shown = claims.availability(items)
    return {"items": [_public(t, shown[t.id]) for t in items], "next_cursor": next_cursor}


@blp.route("/coupons/<int:template_id>", methods=["GET"])
@access.authenticated
@blp.response(200, PublicTemplateSchema)
def coupon(template_id: int):
    """A coupon as a claimer sees it (drafts are not visible)."""
    template = templates.get_template(template_id=template_id)
    if template.status == "draft":
        templates.get_template_for(
            template_id=template_id, actor=access.current_actor()
        )  # 404 unless its issuer or an operator
    return _public(template, claims.availability([template])[template.id])


def _request_key() -> str:
    key = request.headers.get(HEADER, "").strip()
    if not key or len(key) > MAX_KEY_LENGTH:
        raise ApiError(
            f"Send a {HEADER} header (1–{MAX_KEY_LENGTH} characters) so this request can be retried safely.",
            status=428,
            code="idempotency_key_required",
        )
    return key


@idempotent
def _claim_in_sql(args: dict, template_id: int):
    coupon = claims.claim_in_sql(template_id=template_id, user_id=g.user.id, request_key=_request_key(), **args)
    return UserCouponSchema().dump(_coupon_out(coupon, templates.get_template(template_id=template_id))), 201


@blp.route("/coupons/<int:template_id>/claim", methods=["POST"])
@access.authenticated
@access.fenced_session
@blp.arguments(ClaimSchema())
@blp.response(201, UserCouponSchema)
@blp.doc(
    parameters=[
        {
            "in": "header",
            "name": HEADER,
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
            "description": "A client-chosen key; retries with the same key replay the first answer.",
        }
    ]
)
def claim(args, template_id: int):
    """Claim one coupon (send an Idempotency-Key; a retry replays the first answer, the same coupon).

    Flash drops answer from the Redis gate alone; the coupon's row lands a moment later, and your
    coupon list and checkout wait for it, so the returned id can be used at once.
    """
    key = _request_key()
    try:
        try:
            claimed = claims.claim_through_gate(
                template_id=template_id,
                user_id=access.caller_id(),
                request_key=key,
                session_fence=access.session_fence(),
                **args,
            )
        except access.SessionUnverified:
            access.confirm_session()
            claimed = claims.claim_through_gate(template_id=template_id, user_id=g.user.id, request_key=key, **args)
    except Conflict as refused:
        # Four taps in five on a flash drop are refused: answered here, without Flask's exception dispatch.
        return envelope(refused.status, refused.code, refused.message, refused.errors)
    if claimed is None:
        if g.user is None:
            access.confirm_session()
        return _claim_in_sql(args, template_id=template_id)
    return claimed_response(claimed)


def claimed_response(claimed: claims.Claimed):
    """The 201 answering a claim the gate decided (the claim lane answers with it too)."""
    headers = {"Idempotent-Replayed": "true"} if claimed.replayed else {}
    return current_app.response_class(_claimed_json(claimed), status=201, headers=headers, mimetype="application/json")


def _claimed_json(claimed: claims.Claimed) -> str:
    # Rendered by hand in the shape of UserCouponSchema (which documents it): on a flash drop the schema
    # dump cost a fifth of what the gate's answer costs.
    out = _coupon_out(claimed.coupon, claimed.template)
    for name in DATETIME_FIELDS:
        if out[name] is not None:
            out[name] = out[name].isoformat()
    return compact_json(out)


@blp.route("/coupons/<int:template_id>/cards", methods=["POST"])
@access.authenticated
@blp.arguments(CardArgsSchema)
@blp.response(200, CardSchema)
def make_card(args, template_id: int):
    """Your card for a live coupon, with your share code (the same one each time for one group and post)."""
    return cards.card_for(
        template_id=template_id, sharer_id=g.user.id, group_id=args["group_id"], post_id=args["post_id"]
    )


@blp.route("/coupon-cards/<string(maxlength=16):code>", methods=["GET"])
@access.public
@blp.response(200, CardSchema)
def card(code: str):
    """The card behind a share code (what a tapped card opens)."""
    return cards.card_by_code(code=code)


@blp.route("/me/coupons", methods=["GET"])
@access.authenticated
@blp.arguments(MyCouponsArgsSchema, location="query")
@blp.response(200, UserCouponPageSchema)
def my_coupons(args):
    """Your coupons: available (incl. held by an unpaid order), used or expired."""
    rows, next_cursor = wallet.list_coupons(
        user_id=g.user.id, status=args["status"], cursor=args["cursor"], limit=args["limit"]
    )
    return {"items": [_coupon_out(c, t) for c, t in rows], "next_cursor": next_cursor}


@blp.route("/me/coupons/best", methods=["GET"])
@access.authenticated
@blp.arguments(BestArgsSchema, location="query")
@blp.response(200, BestCouponSchema)
def best_coupon(args):
    """The coupon you hold that takes the most off a product (none when nothing applies)."""
    best = wallet.best_for_product(user_id=g.user.id, product_id=args["product_id"], quantity=args["quantity"])
    return {
        "coupon": _coupon_out(best.coupon, best.template) if best.coupon else None,
        "subtotal_fen": best.subtotal_fen,
        "discount_fen": best.discount_fen,
        "payable_fen": best.payable_fen,
    }


admin = Blueprint(
    "coupon_refusals",
    __name__,
    url_prefix="/api/v1/admin",
    description='Operators: coupon grants the database refused after the gate said "claimed".',
)


@admin.route("/coupon-refusals", methods=["GET"])
@access.roles("operator")
@admin.arguments(RefusalListArgsSchema, location="query")
@admin.response(200, RefusalPageSchema)
def list_refusals(args):
    """Refused grants not settled yet (template, user, the coupon id the user was told, reason, when), newest first."""
    items, next_cursor = refusals.list_refusals(**args)
    return {"items": items, "next_cursor": next_cursor}


@admin.route("/coupon-refusals/<string(maxlength=41):entry_id>/resolve", methods=["POST"])
@access.roles("operator")
@admin.arguments(RefusalResolveSchema)
@admin.response(200, RefusalResolutionSchema)
def resolve_refusal(args, entry_id: str):
    """Settle one: `reissue` claims the coupon for the user again if the database's stock and limits allow it
    (409 with the claim's code otherwise), `dismiss` settles it with a note. Repeating returns the first resolution."""
    return refusals.resolve_refusal(entry_id=entry_id, action=args["action"], note=args["note"], operator_id=g.user.id)


blueprints = [manage, blp, admin]
