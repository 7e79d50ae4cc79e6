"""Every external name the stores use: MongoDB collections and SQLite tables."""

VERSIONS = "resource_versions"
CURRENT = "resources"
TXLOG = "transactions"
CLAIMS = "claims"
COUNTERS = "counters"
IDENTIFIERS = "resource_identifiers"
TX_SEQUENCE = "transaction"
