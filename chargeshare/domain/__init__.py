"""Pure rules: money, chargers, bookings, charging sessions, tariffs, the ledger.

Nothing here does I/O, imports a framework or reads the wall clock: times are passed in.
"""
