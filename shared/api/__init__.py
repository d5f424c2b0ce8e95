"""The ``api`` HTTPS function: the frontend's only door. Never returns a token or secret."""
