"""keyway's local-only tooling: the `keyway` CLI, the local runner and the emulator launcher.

Nothing in this package is deployed with a Cloud Function; functions deploy ``shared/`` only.
"""
