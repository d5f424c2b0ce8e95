"""webhook-gitlab (HTTPS): verifies and publishes gitlab webhooks (see shared.webhooks.pipeline)."""

import functions_framework

from shared.entry import http_function
from shared.webhooks.pipeline import receiver

serve = functions_framework.http(http_function("webhook-gitlab", receiver("gitlab")))
