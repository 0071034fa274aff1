"""`dualrun relaunch`: bulk relaunch of failed or stuck renewals, paced, recorded, resumable.

Temporal renewals are reset to before their last failed activity (or started afresh under the
same key when their history is gone); legacy renewals are requeued. Every side effect carries the
renewal's idempotency key, so a relaunch of a renewal that already happened renews nothing.
"""
