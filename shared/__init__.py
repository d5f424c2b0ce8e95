"""keyway's shared library: everything a Cloud Function deploys with.

Entry points in ``functions/<name>/main.py`` stay thin; the behaviour lives here. Start at
:mod:`shared.bootstrap` (the composition root) and :mod:`shared.ports` (the interfaces every
adapter implements).
"""
