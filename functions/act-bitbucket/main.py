"""act-bitbucket (Pub/Sub): user-attributed actions on bitbucket."""

import functions_framework

from shared.entry import event_function
from shared.routing import handlers_for

receive = functions_framework.cloud_event(
    event_function("act-bitbucket", handlers_for("act-bitbucket"))
)
