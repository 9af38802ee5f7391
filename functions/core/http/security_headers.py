"""The security headers of every response, defined once: CloudFront sends the page's in AWS
(infra/web.py reads them from here), the local server sends them itself, and API answers
carry the JSON set through both front doors."""

from __future__ import annotations

REFERRER_POLICY = "strict-origin-when-cross-origin"
# JSON is never a document: it may load nothing and be framed by nothing.
API_CONTENT_SECURITY_POLICY = "default-src 'none'; frame-ancestors 'none'"


def page_content_security_policy(connect_src: str = "'self'") -> str:
    """The page's CSP; `connect-src` names where the API is (the local server: the page's
    own origin). Images may come from any https origin (the image scenes' URLs)."""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; "
        f"img-src 'self' data: blob: https:; connect-src {connect_src}; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
    )


def security_headers(content_security_policy: str | None) -> dict[str, str]:
    """nosniff, frame denial (both the old header and the CSP's), the referrer policy, and
    `content_security_policy` unless None."""
    headers = {
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
        "referrer-policy": REFERRER_POLICY,
    }
    if content_security_policy is not None:
        headers["content-security-policy"] = content_security_policy
    return headers


API_HEADERS = security_headers(API_CONTENT_SECURITY_POLICY)
