package httpapi_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/snapshot/snapshotapi"
)

// TestOpenAPIMatchesRoutes checks the document served at /v1/openapi.json
// against the routes the server serves, with the snapshot routes mounted as
// gather serve mounts them: every route documented, every documented
// operation served, every problem code documented.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, opts{workers: -1})
	snaps, err := snapshotapi.New(&snapshotapi.Config{Specs: []snapshotapi.Spec{{Name: "s", Sources: []snapshotapi.SourceSpec{{Name: "a"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { snaps.Close() })
	if err := e.api.Mount(snaps); err != nil {
		t.Fatal(err)
	}
	if err := e.api.Mount(snaps); err == nil || !strings.Contains(err.Error(), "already served") {
		t.Fatalf("mounting the same routes twice: %v", err)
	}
	r := e.do("GET", "/v1/openapi.json", "")
	if r.status != 200 {
		t.Fatalf("status %d", r.status)
	}
	var doc struct {
		OpenAPI    string                                `json:"openapi"`
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]struct {
					Enum []string `json:"enum"`
				} `json:"properties"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	var documented []string
	for path, ops := range doc.Paths {
		for method := range ops {
			documented = append(documented, strings.ToUpper(method)+" "+path)
		}
	}
	served := httpapi.Routes(e.api)
	slices.Sort(documented)
	slices.Sort(served)
	if !slices.Equal(documented, served) {
		t.Fatalf("documented:\n%s\nserved:\n%s", strings.Join(documented, "\n"), strings.Join(served, "\n"))
	}
	codes := doc.Components.Schemas["Problem"].Properties["code"].Enum
	for _, c := range []string{httpapi.CodeMalformed, httpapi.CodeUnauthorized, httpapi.CodeForbidden, httpapi.CodeNotFound,
		httpapi.CodeMethod, httpapi.CodeConflict, httpapi.CodeTooLarge, httpapi.CodeMediaType, httpapi.CodeUnknownKind,
		httpapi.CodeKindDisabled, httpapi.CodeBadOption, httpapi.CodeBadInput, httpapi.CodeQueueFull, httpapi.CodeDraining,
		httpapi.CodeUnsupported, httpapi.CodeInternal, httpapi.CodeBrokerDown} {
		if !slices.Contains(codes, c) {
			t.Errorf("problem code %q not in the document", c)
		}
	}
}
