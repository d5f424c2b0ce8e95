"""oauth-jira (HTTPS): start and callback of jira's OAuth flow."""

import functions_framework

from shared.entry import http_function
from shared.oauth.http import handler

serve = functions_framework.http(http_function("oauth-jira", handler("jira")))
