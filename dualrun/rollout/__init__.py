"""The guarded rollout (DESIGN §4): move a TLD's flag one step when its verdict is ready, one
step back by hand, and back to legacy at once when a critical Temporal-side finding appears;
every flag change recorded as a rollout event."""
