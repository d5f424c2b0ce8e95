"""vault-bitbucket (Pub/Sub): stores/refreshes bitbucket tokens; seals and pushes them."""

import functions_framework

from shared.entry import event_function
from shared.routing import handlers_for

receive = functions_framework.cloud_event(
    event_function("vault-bitbucket", handlers_for("vault-bitbucket"))
)
