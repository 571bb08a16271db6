"""Driving adapters: the HTTP API, the OCPP WebSocket server, metrics, and how a server process runs."""
