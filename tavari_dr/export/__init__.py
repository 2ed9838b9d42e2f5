"""Data export: one account's data (account), the export API behind GET /api/account/export (api),
its Lambda authorizer (authorizer) and the Supabase access-token verification it relies on (jwt_auth)."""
