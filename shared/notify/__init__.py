"""Outbound notifications: signed webhooks to the URLs a tenant admin registers.

``events`` records an event (outbox, then the ``notifications`` topic), ``sources`` builds
each kind from the fact its component recorded, ``subscriptions`` keeps the tenants'
subscriptions and their signing secrets, ``sign`` signs a delivery, ``deliver`` is the
``notify`` component's handler. docs/ARCHITECTURE.md, "Notifications", tells the whole path.
"""
