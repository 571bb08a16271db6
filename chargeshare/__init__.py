"""ChargeShare: reference backend for a peer-to-peer EV charging marketplace."""

__version__ = "0.1.0"
