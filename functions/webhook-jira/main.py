"""webhook-jira (HTTPS): verifies and publishes jira webhooks (see shared.webhooks.pipeline)."""

import functions_framework

from shared.entry import http_function
from shared.webhooks.pipeline import receiver

serve = functions_framework.http(http_function("webhook-jira", receiver("jira")))
