"""Subscriptions, the pure part: topics, triggers, filters, notification Bundles, the endpoint
policy and the Subscription resource's own rules (R4 subscription.html; Subscriptions R5
Backport IG STU 1.1, R4 profiles). Nothing here performs I/O."""
