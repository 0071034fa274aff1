"""The reference legacy engine: the registrar's robots and its upstream auto-renew batch.

They stand in for a system we do not own and write the legacy tables as the real ones do, with
their own SQL (DESIGN §2).
"""
