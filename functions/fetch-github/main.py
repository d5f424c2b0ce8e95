"""fetch-github (Pub/Sub): metadata sync for github."""

import functions_framework

from shared.entry import event_function
from shared.routing import handlers_for

receive = functions_framework.cloud_event(
    event_function("fetch-github", handlers_for("fetch-github"))
)
