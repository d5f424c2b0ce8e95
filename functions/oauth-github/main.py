"""oauth-github (HTTPS): start and callback of github's OAuth flow."""

import functions_framework

from shared.entry import http_function
from shared.oauth.http import handler

serve = functions_framework.http(http_function("oauth-github", handler("github")))
