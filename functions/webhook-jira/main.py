"""webhook-jira (HTTPS): verifies and publishes jira webhooks."""

import functions_framework

from shared.entry import http_function

serve = functions_framework.http(http_function("webhook-jira"))
