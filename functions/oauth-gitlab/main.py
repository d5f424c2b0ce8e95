"""oauth-gitlab (HTTPS): start and callback of gitlab's OAuth flow."""

import functions_framework

from shared.entry import http_function
from shared.oauth.http import handler

serve = functions_framework.http(http_function("oauth-gitlab", handler("gitlab")))
