"""api (HTTPS): frontend API: connections, data, actions; never tokens."""

import functions_framework

from shared.api.app import handle
from shared.entry import http_function

serve = functions_framework.http(http_function("api", handle))
