"""The edges: storage, locks, payments, the websocket and HTTP server."""
