package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Problem is an error response as RFC 9457 describes it
// (application/problem+json), with a stable machine-readable Code. The
// codes are listed in the OpenAPI document; clients branch on Code, never
// on Detail.
type Problem struct {
	Type   string `json:"type"`   // "about:blank"
	Title  string `json:"title"`  // the status text
	Status int    `json:"status"` // the HTTP status
	Code   string `json:"code"`   // stable, such as "unknown_kind"
	Detail string `json:"detail"` // what was wrong and what is accepted
	// RetryAfter, in seconds, is also sent as the Retry-After header; 0
	// means none.
	RetryAfter int `json:"retry_after,omitempty"`
}

// The problem codes.
const (
	CodeMalformed    = "malformed"    // 400: the request does not parse
	CodeUnauthorized = "unauthorized" // 401: no or wrong token
	CodeForbidden    = "forbidden"    // 403: cross-origin request or unknown Host
	CodeNotFound     = "not_found"    // 404
	CodeMethod       = "method_not_allowed"
	CodeConflict     = "conflict"  // 409: idempotency key names another batch shape
	CodeTooLarge     = "too_large" // 413: body, item count or item size over its limit
	CodeMediaType    = "unsupported_media_type"
	CodeUnknownKind  = "unknown_kind"  // 422
	CodeKindDisabled = "kind_disabled" // 422: the kind is known but refused by this server
	CodeBadOption    = "bad_option"    // 422
	CodeBadInput     = "bad_input"     // 422: items that do not encode, an empty batch
	CodeQueueFull    = "queue_full"    // 429
	CodeDraining     = "draining"      // 503: the server is shutting down
	CodeUnsupported  = "unsupported"   // 501: the broker lacks the feature
	CodeInternal     = "internal"      // 500
	CodeBrokerDown   = "broker_unavailable"
)

// problemError carries a Problem through a handler's return.
type problemError struct{ p Problem }

func (e *problemError) Error() string { return e.p.Code + ": " + e.p.Detail }

func problem(status int, code, format string, args ...any) error {
	return &problemError{Problem{
		Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code,
		Detail: fmt.Sprintf(format, args...),
	}}
}

func retryLater(err error, after time.Duration) error {
	var pe *problemError
	if errors.As(err, &pe) {
		pe.p.RetryAfter = max(1, int(after.Round(time.Second)/time.Second))
	}
	return err
}

// writeProblem writes err as problem+json; an error that is not a problem
// is a 500 whose detail is err's message.
func writeProblem(w http.ResponseWriter, err error) {
	var pe *problemError
	if !errors.As(err, &pe) {
		pe = problem(http.StatusInternalServerError, CodeInternal, "%v", err).(*problemError)
	}
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("X-Content-Type-Options", "nosniff")
	if pe.p.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(pe.p.RetryAfter))
	}
	if pe.p.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="gather"`)
	}
	w.WriteHeader(pe.p.Status)
	b, _ := json.Marshal(pe.p)
	w.Write(append(b, '\n'))
}
