"""notify (Pub/Sub): delivers signed notifications to the tenants' webhook subscriptions."""

import functions_framework

from shared.entry import event_function
from shared.routing import handlers_for

receive = functions_framework.cloud_event(
    event_function("notify", handlers_for("notify"))
)
