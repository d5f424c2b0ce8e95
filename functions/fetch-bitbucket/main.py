"""fetch-bitbucket (Pub/Sub): metadata sync for bitbucket."""

import functions_framework

from shared.entry import event_function
from shared.routing import handlers_for

receive = functions_framework.cloud_event(
    event_function("fetch-bitbucket", handlers_for("fetch-bitbucket"))
)
