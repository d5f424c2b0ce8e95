"""webhook-github (HTTPS): verifies and publishes github webhooks (see shared.webhooks.pipeline)."""

import functions_framework

from shared.entry import http_function
from shared.webhooks.pipeline import receiver

serve = functions_framework.http(http_function("webhook-github", receiver("github")))
