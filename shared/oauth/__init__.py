"""How tokens enter keyway: OAuth authorization-code flows with PKCE.

``start`` (called by the ``api``) creates server-side state and the authorize URL;
``callback`` (the ``oauth-P`` function) checks the state, redeems the code and hands the
token straight to the provider's vault in-process. Nothing here returns or logs a token.
"""
