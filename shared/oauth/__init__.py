"""How tokens enter keyway: OAuth authorization-code flows with PKCE.

``start`` (called by the ``api``) creates server-side state and the provider's authorize URL
and returns keyway's start URL; ``begin`` (the ``oauth-P`` start step) binds the flow to the
browser that opens it (``flowcookie``) and sends it on to the provider; ``callback`` (the
``oauth-P`` function) checks the state and that browser binding, redeems the code and hands
the token straight to the provider's vault in-process. Nothing here returns or logs a token.
"""
