"""webhook-bitbucket (HTTPS): verifies and publishes Bitbucket webhooks (shared.webhooks)."""

import functions_framework

from shared.entry import http_function
from shared.webhooks.pipeline import receiver

serve = functions_framework.http(http_function("webhook-bitbucket", receiver("bitbucket")))
