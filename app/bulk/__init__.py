"""Bulk Data export (Bulk Data Access IG v2.0.0): the kick-off's parameters (kickoff), the
output as data (output), and where the files live (port; adapters local and mongo)."""
