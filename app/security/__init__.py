"""Who may do what (docs/security.md): token verification, SMART scopes, the scope filters that
searches carry, the audit record, and hostile-input limits. Pure except `keys` and `timeouts`."""
