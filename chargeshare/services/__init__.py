"""Use cases over the domain, written against ports (Protocols) so adapters can be swapped."""
