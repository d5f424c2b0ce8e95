"""The plain pages a browser sees from ``oauth-P``: a refusal, and the sign-in form of an
identity link's start step.

Every answer of the start step and every page carries :func:`harden`'s headers: never cached,
never framed, no referrer to another site (the start URL carries the state), and a
Content-Security-Policy without any script. The sign-in form's page sends its referrer to
keyway's own origin only (``same-origin``): under ``no-referrer`` a browser sends
``Origin: null`` with the form's post, which the start step refuses as a foreign origin.
Pages without a form also say ``form-action 'none'``; the sign-in form's page leaves
``form-action`` out, because browsers apply it to every redirect after the post too, and the
provider may send the browser on to its own sign-in host (Atlassian, a GitLab's single
sign-on) before coming back. No page renders a token, a cookie or the state other than the
form's own hidden ``state`` field.
"""

from __future__ import annotations

from html import escape

from flask import Response

from shared.errors import KeywayError

_CSP = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="referrer" content="{referrer}"></head>
<body><h1>{title}</h1>
{body}</body></html>
"""


def harden(response: Response, *, form: bool = False) -> Response:
    """The headers every start-step and refusal answer carries (see the module docstring);
    ``form``: the sign-in form's page."""
    response.headers["Content-Security-Policy"] = _CSP if form else f"{_CSP}; form-action 'none'"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = _referrer(form)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _referrer(form: bool) -> str:
    return "same-origin" if form else "no-referrer"


def _html(status: int, title: str, body: str, *, form: bool = False) -> Response:
    page = _PAGE.format(title=escape(title), body=body, referrer=_referrer(form))
    return harden(Response(page, status=status, mimetype="text/html"), form=form)


def refusal(error: KeywayError) -> Response:
    """A plain page saying what happened, with the error's stable key (no secret in it)."""
    body = (f"<p>{escape(error.detail or error.title)}</p>\n"
            f"<p>Start again from the application. Reference: <code>{escape(error.key)}"
            "</code></p>\n")
    return _html(error.status, error.title, body)


def sign_in_form(action: str, state_value: str, provider: str) -> Response:
    """The identity link's start step: prove who you are by posting your keyway access token
    (RFC 6750 §2.2 form-encoded bearer token). The token field starts empty."""
    body = f"""<p>To link your {escape(provider)} account, confirm you are the keyway user who
asked for it: paste your keyway access token. A product's frontend posts this form for you.</p>
<form method="post" action="{escape(action)}">
<input type="hidden" name="state" value="{escape(state_value)}">
<label>Access token <input type="password" name="access_token" autocomplete="off"
required></label>
<button type="submit">Continue to {escape(provider)}</button>
</form>
"""
    return _html(200, "Link your account", body, form=True)
