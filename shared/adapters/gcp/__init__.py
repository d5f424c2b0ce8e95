"""GCP adapters: the only place in ``shared/`` importing ``google.cloud`` / ``google.api_core``."""
