// Package httpapi serves the queue over HTTP and JSON: use it to let
// programs that do not link Go (curl, Python's asyncio, a browser) submit
// batches, await them, follow them as server-sent events, cancel them, and
// inspect queues and dead letters; use package queue directly from Go.
// cmd/gather's serve command mounts it; any program can, on any broker.
// Other services (snapshot/snapshotapi) are served beside it with
// Server.Mount, behind the same checks.
//
// The routes live under /v1 (see the OpenAPI document at /v1/openapi.json,
// which a test checks against the routes served), with /healthz, /readyz
// and, when configured, /metrics beside them. Errors are RFC 9457
// problem+json with a stable code (see Problem).
//
// A Server follows each batch it is asked about with one subscription, kept
// in memory until Config.ResultTTL after the batch finished: every waiting
// request and event stream of a batch reads the same record, so a thousand
// clients waiting on one batch cost one subscription. A batch submitted
// with mode "all" is failed fast by the server that accepted it: the first
// failure cancels the rest.
//
// Security: a Server checks the bearer token (Config.Token) of every
// request but /healthz and /readyz; without a token it refuses requests
// whose Host is not one it serves (DNS rebinding). It refuses cross-origin
// requests that change state, and accepts bodies only as application/json.
// Request bodies, batch sizes and item sizes are limited (Config.MaxBody,
// MaxItems, MaxItem); a refused request changes nothing.
package httpapi
