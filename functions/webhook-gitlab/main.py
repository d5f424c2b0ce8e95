"""webhook-gitlab (HTTPS): verifies and publishes gitlab webhooks."""

import functions_framework

from shared.entry import http_function

serve = functions_framework.http(http_function("webhook-gitlab"))
