package httpapi_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestHostileRequests sends requests an attacker or a confused client
// would, each of which must get its status, its stable code and a detail
// that says what was wrong, and change nothing: the server serves the
// next request, and nothing was enqueued.
func TestHostileRequests(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{token: "s3cret", workers: -1})
	big := `{"kind":"echo","items":["` + strings.Repeat("x", 5<<10) + `"]}`
	huge := `{"kind":"echo","items":["` + strings.Repeat("x", 2<<20) + `"]}`
	many := `{"kind":"echo","items":[` + strings.Repeat("1,", 20_000) + `1]}`
	cases := []struct {
		name         string
		method, path string
		body         string
		hdr          []string
		status       int
		code, detail string
	}{
		{"no token", "POST", "/v1/batches", `{"kind":"echo","items":[1]}`, []string{"Authorization", ""}, 401, "unauthorized", "Bearer"},
		{"wrong token", "GET", "/v1/queues", "", []string{"Authorization", "Bearer nope"}, 401, "unauthorized", "token"},
		{"token without Bearer", "GET", "/v1/queues", "", []string{"Authorization", "s3cret"}, 401, "unauthorized", "Bearer"},
		{"metrics need the token", "GET", "/metrics", "", []string{"Authorization", ""}, 401, "unauthorized", "token"},
		{"cross-origin POST", "POST", "/v1/batches", `{"kind":"echo","items":[1]}`, []string{"Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, 403, "forbidden", "cross-origin"},
		{"form post", "POST", "/v1/batches", `kind=echo`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "unsupported_media_type", "application/json"},
		{"no content type", "POST", "/v1/batches", `{"kind":"echo","items":[1]}`, []string{"Content-Type", ""}, 415, "unsupported_media_type", "want application/json"},
		{"not JSON", "POST", "/v1/batches", `{"kind":`, nil, 400, "malformed", "ends inside"},
		{"garbage", "POST", "/v1/batches", `<xml/>`, nil, 400, "malformed", "not JSON"},
		{"empty body", "POST", "/v1/batches", ``, []string{"Content-Type", "application/json"}, 400, "malformed", "empty body"},
		{"trailing data", "POST", "/v1/batches", `{"kind":"echo","items":[1]} {}`, nil, 400, "malformed", "trailing"},
		{"unknown field", "POST", "/v1/batches", `{"kind":"echo","items":[1],"evil":true}`, nil, 400, "malformed", `unknown field "evil"`},
		{"items not an array", "POST", "/v1/batches", `{"kind":"echo","items":"1"}`, nil, 400, "malformed", `field "items": got a JSON string, want an array`},
		{"items null", "POST", "/v1/batches", `{"kind":"echo","items":null}`, nil, 400, "malformed", `field "items": got a JSON null, want an array`},
		{"kind a number", "POST", "/v1/batches", `{"kind":7,"items":[1]}`, nil, 400, "malformed", `field "kind": got a JSON number, want a string`},
		{"max_attempts a string", "POST", "/v1/batches", `{"kind":"echo","items":[1],"options":{"max_attempts":"3"}}`, nil, 400, "malformed", "max_attempts"},
		{"unknown kind", "POST", "/v1/batches", `{"kind":"rm-rf","items":[1]}`, nil, 422, "unknown_kind", "want one of echo, gate, http, sleep"},
		{"kind with a slash", "POST", "/v1/batches", `{"kind":"../echo","items":[1]}`, nil, 422, "unknown_kind", "letters, digits"},
		{"exec without allow-list", "POST", "/v1/batches", `{"kind":"exec","items":[{"command":"sh"}]}`, nil, 422, "kind_disabled", "no allow-list"},
		{"no items", "POST", "/v1/batches", `{"kind":"echo","items":[]}`, nil, 422, "bad_input", "at least one"},
		{"bad priority", "POST", "/v1/batches", `{"kind":"echo","items":[1],"priority":"urgent"}`, nil, 422, "bad_option", "want low, normal, high, critical"},
		{"negative timeout", "POST", "/v1/batches", `{"kind":"echo","items":[1],"options":{"timeout":"-1s"}}`, nil, 422, "bad_option", "positive duration"},
		{"zero max attempts", "POST", "/v1/batches", `{"kind":"echo","items":[1],"options":{"max_attempts":-2}}`, nil, 422, "bad_option", "at least 1"},
		{"two bad options", "POST", "/v1/batches", `{"kind":"echo","items":[1],"options":{"delay":"soon","backoff_min":"1h","backoff_max":"1s"}}`, nil, 422, "bad_option", "delay \"soon\""},
		{"bad queue name", "POST", "/v1/batches", `{"kind":"echo","items":[1],"queue":"a b"}`, nil, 422, "bad_option", "queue name"},
		{"bad mode", "POST", "/v1/batches?mode=some", `{"kind":"echo","items":[1]}`, nil, 422, "bad_option", "want settled"},
		{"bad wait", "POST", "/v1/batches?wait=forever", `{"kind":"echo","items":[1]}`, nil, 400, "malformed", "wait \"forever\""},
		{"item too large", "POST", "/v1/batches", big, nil, 413, "too_large", "limit is 4096 bytes an item"},
		{"body too large", "POST", "/v1/batches", huge, nil, 413, "too_large", "limit is 1048576 bytes"},
		{"too many items", "POST", "/v1/batches", many, nil, 413, "too_large", "limit is 20000 items"},
		{"unknown batch", "GET", "/v1/batches/nope", "", nil, 404, "not_found", `no batch "nope"`},
		{"unknown batch events", "GET", "/v1/batches/nope/events", "", nil, 404, "not_found", "nope"},
		{"cancel unknown", "POST", "/v1/batches/nope/cancel", "", nil, 404, "not_found", "nope"},
		{"bad Last-Event-ID", "GET", "/v1/batches/x/events", "", []string{"Last-Event-ID", "abc"}, 400, "malformed", "Last-Event-ID"},
		{"bad page", "GET", "/v1/batches/x?from=-1", "", nil, 400, "malformed", "from"},
		{"bad task ID", "POST", "/v1/dead-letters/nope/redrive", "", nil, 400, "malformed", "want <batch ID>/<index>"},
		{"unknown dead letter", "GET", "/v1/dead-letters/ab%2F3", "", nil, 404, "not_found", "ab/3"},
		{"dead letters limit", "GET", "/v1/dead-letters?limit=1000000", "", nil, 400, "malformed", "want 1 to 1000"},
		{"unknown route", "GET", "/v1/secrets", "", nil, 404, "not_found", "openapi.json"},
		{"wrong method", "DELETE", "/v1/batches", "", nil, 405, "method_not_allowed", "allowed"},
		{"dot segments", "GET", "/v1/batches/../../etc/passwd", "", nil, 404, "not_found", ""},
		{"encoded dot segments", "GET", "/v1/batches/%2e%2e%2f%2e%2e%2fetc", "", nil, 404, "not_found", ""},
		{"NUL in ID", "GET", "/v1/batches/a%00b", "", nil, 404, "not_found", ""},
		{"very long ID", "GET", "/v1/batches/" + strings.Repeat("a", 4000), "", nil, 404, "not_found", ""},
	}
	for _, c := range cases {
		r := e.do(c.method, c.path, c.body, c.hdr...)
		if r.status != c.status {
			t.Errorf("%s: status %d, want %d: %s", c.name, r.status, c.status, r.body)
			continue
		}
		if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("%s: Content-Type %q", c.name, ct)
			continue
		}
		var p struct {
			Status int
			Code   string
			Detail string
		}
		if err := json.Unmarshal(r.body, &p); err != nil {
			t.Errorf("%s: body %q: %v", c.name, r.body, err)
			continue
		}
		if p.Status != c.status || p.Code != c.code || !strings.Contains(p.Detail, c.detail) {
			t.Errorf("%s: got %d %s %q, want %d %s containing %q", c.name, p.Status, p.Code, p.Detail, c.status, c.code, c.detail)
		}
	}
	// Nothing was enqueued, and the server still serves.
	r := e.do("GET", "/v1/queues", "")
	if r.status != 200 || regexp.MustCompile(`"total":[1-9]`).Match(r.body) {
		t.Fatalf("after the hostile requests: %d %s", r.status, r.body)
	}
	if r = e.do("POST", "/v1/batches", `{"kind":"echo","items":[1]}`); r.status != http.StatusCreated {
		t.Fatalf("a good request after: %d %s", r.status, r.body)
	}
}

// TestRebinding checks the Host of requests to a server without a token:
// loopback names and the configured hosts are served, others refused.
func TestRebinding(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{workers: -1, cfg: func(c *httpapiConfig) { c.Hosts = []string{"gather.example", "Other.Example."} }})
	for host, want := range map[string]int{
		"evil.example:8080": 403, "evil.example": 403, "127.0.0.2:8080": 403, "localhost.evil.example": 403,
		"localhost:8080": 200, "127.0.0.1": 200, "[::1]:8080": 200, "gather.example:8080": 200, "GATHER.example": 200,
		"localhost.:8080": 200, "gather.example.": 200, "other.example:80": 200, "[::1]": 200, "evil.example.": 403,
		"[::ffff:127.0.0.1]:8080": 403, "localhost..": 403,
	} {
		r := e.do("GET", "/v1/queues", "", "Host", host)
		if r.status != want {
			t.Errorf("Host %s: %d, want %d: %s", host, r.status, want, r.body)
		} else if want == 403 && !strings.Contains(string(r.body), `"code":"forbidden"`) {
			t.Errorf("Host %s: %s", host, r.body)
		}
	}
	if r := e.do("GET", "/v1/queues", ""); r.status != 200 {
		t.Fatalf("still serving: %d", r.status)
	}
}

// TestBearerSchemeCase checks that the scheme of the Authorization header
// is taken in any case, as HTTP defines it, and the token exactly.
func TestBearerSchemeCase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{token: "s3cret", workers: -1})
	for hdr, want := range map[string]int{"bearer s3cret": 200, "BEARER s3cret": 200, "Bearer S3CRET": 401, "Bearer  s3cret": 401, "Bearers3cret": 401} {
		if r := e.do("GET", "/v1/queues", "", "Authorization", hdr); r.status != want {
			t.Errorf("Authorization %q: %d, want %d", hdr, r.status, want)
		}
	}
}
