"""fetch-gitlab (Pub/Sub): metadata sync for gitlab."""

import functions_framework

from shared.entry import event_function
from shared.routing import handlers_for

receive = functions_framework.cloud_event(
    event_function("fetch-gitlab", handlers_for("fetch-gitlab"))
)
