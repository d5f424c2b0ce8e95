"""The ``scheduler`` component: turns Cloud Scheduler ticks into sync requests."""
