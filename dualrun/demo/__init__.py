"""`dualrun demo`: a month-start burst through both engines, reconciled, with its invariants."""
