"""Cryptography: field encryption, data keys, channel keys and sealed push envelopes.

Modules:

* :mod:`shared.crypto.datakeys` — per-component 256-bit data keys, versioned, stored only
  wrapped by the component's KMS key; rotation, retirement and encryption counting.
* :mod:`shared.crypto.fields` — field-level AES-256-GCM of vault records, with associated data
  binding tenant, provider, collection, record id, field and key version (promise 2).
* :mod:`shared.crypto.channels` — channel keys shared only by a vault and one recipient.
* :mod:`shared.crypto.seal` — sealed push envelopes carrying a token to that recipient
  (promise 3).
* :mod:`shared.crypto.replay` — replay guard: each envelope nonce opens at most once.
* ``shared.crypto._aead`` — private: sizes, the opaque failure and associated-data encoding.
* ``shared.crypto._keymeta`` — private: the data-key metadata document's transactions.
"""
