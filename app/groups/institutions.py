"""Institutions (kindergartens, parenting organisations) and their classes, managed by hosts."""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.core.access import Actor
from app.core.clock import now_utc
from app.core.db import db
from app.core.errors import Conflict, Forbidden, Invalid, NotFound
from app.core.pagination import keyset_page
from app.groups.models import Institution, InstitutionClass


def _institution(*, institution_id: int, actor: Actor) -> Institution:
    institution = db.session.get(Institution, institution_id)
    if institution is None:
        raise NotFound("No such institution.", code="institution_not_found")
    if not actor.operator and institution.owner_id != actor.id:
        raise Forbidden("This institution is managed by someone else.", code="institution_not_yours")
    return institution


def create_institution(*, actor: Actor, name: str, kind: str, city: str) -> Institution:
    """Register an institution, managed by the actor."""
    institution = Institution(name=name.strip(), kind=kind, city=city.strip(), owner_id=actor.id, created_at=now_utc())
    db.session.add(institution)
    db.session.flush()
    return institution


def get_institution(*, institution_id: int, actor: Actor) -> Institution:
    """One institution the actor manages."""
    return _institution(institution_id=institution_id, actor=actor)


def update_institution(*, institution_id: int, actor: Actor, changes: dict) -> Institution:
    """Rename or re-describe an institution."""
    institution = _institution(institution_id=institution_id, actor=actor)
    for field in ("name", "kind", "city"):
        if field in changes:
            setattr(institution, field, changes[field].strip() if field != "kind" else changes[field])
    return institution


def list_institutions(*, actor: Actor, cursor: str | None, limit: int) -> tuple[list[Institution], str | None]:
    """Institutions the actor manages (operators: all), newest first."""
    stmt = select(Institution)
    if not actor.operator:
        stmt = stmt.where(Institution.owner_id == actor.id)
    return keyset_page(
        stmt,
        columns=[Institution.id],
        kinds=[int],
        cursor=cursor,
        limit=limit,
        key_of=lambda i: (i.id,),
        session=db.session,
    )


def create_class(*, institution_id: int, actor: Actor, name: str, age_band: str) -> InstitutionClass:
    """Add a class to an institution; names are unique within it."""
    _institution(institution_id=institution_id, actor=actor)
    klass = InstitutionClass(institution_id=institution_id, name=name.strip(), age_band=age_band, created_at=now_utc())
    try:
        with db.session.begin_nested():
            db.session.add(klass)
    except IntegrityError:
        raise Conflict("The institution already has a class of this name.", code="class_name_taken") from None
    return klass


def list_classes(*, institution_id: int, actor: Actor) -> list[InstitutionClass]:
    """The classes of an institution the actor manages."""
    _institution(institution_id=institution_id, actor=actor)
    return list(
        db.session.scalars(
            select(InstitutionClass)
            .where(InstitutionClass.institution_id == institution_id)
            .order_by(InstitutionClass.id)
        )
    )


def check_placement(*, actor: Actor, institution_id: int | None, class_id: int | None) -> None:
    """A group sits in an institution the actor manages, and in one of its classes (or none)."""
    if institution_id is not None:
        _institution(institution_id=institution_id, actor=actor)
    if class_id is not None:
        klass = db.session.get(InstitutionClass, class_id)
        if klass is None or klass.institution_id != institution_id:
            raise Invalid(
                "The class must belong to the group's institution.",
                code="class_not_in_institution",
                errors={"class_id": ["Not a class of the institution."]},
            )
