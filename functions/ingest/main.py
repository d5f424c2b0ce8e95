"""ingest (Pub/Sub): turns webhook events into normalized records."""

import functions_framework

from shared.entry import event_function
from shared.routing import handlers_for

receive = functions_framework.cloud_event(
    event_function("ingest", handlers_for("ingest"))
)
