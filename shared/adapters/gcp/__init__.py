"""GCP adapters: the only place in ``shared/`` that imports ``google.cloud`` or ``google.api_core``."""
