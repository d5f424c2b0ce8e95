"""act-jira (Pub/Sub): user-attributed actions on jira."""

import functions_framework

from shared.entry import event_function
from shared.routing import handlers_for

receive = functions_framework.cloud_event(
    event_function("act-jira", handlers_for("act-jira"))
)
