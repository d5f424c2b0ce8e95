"""Record builders that GitHub and GitLab share: their labels and users differ only in the
names of two fields, so one builder serves both (:mod:`shared.records.github`,
:mod:`shared.records.gitlab`)."""

from __future__ import annotations

from shared.records import model as m
from shared.records.model import Context


def label(raw: dict, ctx: Context) -> dict:
    """A repository (project, group) label. Neither provider gives labels timestamps, so
    ``updated_at`` is ``ctx.observed_at``."""
    return m.make(
        "labels", ctx, external_id=m.ident(raw), url=None, created_at=None,
        updated_at=m.updated(ctx, None),
        name=m.text(raw, "name"), color=m.color(raw.get("color")),
        description=m.optional_text(raw, "description"),
    )


def user(raw: dict, ctx: Context, *, url_field: str, login_field: str) -> dict:
    """A user (``GET /user``): its page under ``url_field`` and its handle under
    ``login_field``; without an ``updated_at`` (GitLab, embedded users) ``observed_at``."""
    m.obj(raw)
    return m.make(
        "users", ctx, external_id=m.ident(raw), url=m.optional_text(raw, url_field),
        created_at=m.timestamp(raw, "created_at", required=False),
        updated_at=m.updated(ctx, m.timestamp(raw, "updated_at", required=False)),
        login=m.text(raw, login_field), name=m.optional_text(raw, "name"),
        avatar_url=m.optional_text(raw, "avatar_url"),
    )
