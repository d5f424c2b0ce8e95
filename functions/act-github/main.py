"""act-github (Pub/Sub): user-attributed actions on github."""

import functions_framework

from shared.entry import event_function
from shared.routing import handlers_for

receive = functions_framework.cloud_event(
    event_function("act-github", handlers_for("act-github"))
)
