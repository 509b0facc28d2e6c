"""Auth-failure alerts: the state machine per destination, its durable store, and its wiring to the worker."""
