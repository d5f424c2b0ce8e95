"""api (HTTPS): frontend API: connections, data, actions; never tokens."""

import flask
import functions_framework

from shared.api.app import handle, install
from shared.entry import http_function

if flask.has_app_context():  # functions-framework loads this module inside its app's context
    install(flask.current_app)
serve = functions_framework.http(http_function("api", handle))
