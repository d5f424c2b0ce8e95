"""fetch-jira (Pub/Sub): metadata sync for jira."""

import functions_framework

from shared.entry import event_function
from shared.routing import handlers_for

receive = functions_framework.cloud_event(
    event_function("fetch-jira", handlers_for("fetch-jira"))
)
