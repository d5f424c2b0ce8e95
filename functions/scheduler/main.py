"""scheduler (Pub/Sub): finds connections due for refresh."""

import functions_framework

from shared.entry import event_function
from shared.routing import handlers_for

receive = functions_framework.cloud_event(
    event_function("scheduler", handlers_for("scheduler"))
)
