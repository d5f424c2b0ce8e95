"""webhook-bitbucket (HTTPS): verifies and publishes bitbucket webhooks."""

import functions_framework

from shared.entry import http_function

serve = functions_framework.http(http_function("webhook-bitbucket"))
