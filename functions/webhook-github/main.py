"""webhook-github (HTTPS): verifies and publishes github webhooks."""

import functions_framework

from shared.entry import http_function

serve = functions_framework.http(http_function("webhook-github"))
