"""The token vault: sealed storage, release policy, single-flight refresh, revocation.

Modules: ``tokens`` (the in-memory token set), ``oauth`` (refresh and revocation over HTTP),
``records`` (encrypted vault records), ``release`` (the token-kind policy), ``refresh``
(single-flight refresh), ``service`` (what oauth-P and vault-P call), ``handlers`` (vault-P's
message handlers), ``receive`` (how fetch-P / act-P open what the vault pushed).
"""
