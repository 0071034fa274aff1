"""dualrun: route domain renewals between a legacy engine and Temporal, reconcile both."""

__version__ = "0.1.0"
