package cli

import (
	"bytes"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"

	"github.com/gather-go/gather/httpapi"
	"github.com/gather-go/gather/snapshot/snapshotapi"
)

// loadSnapshotSpecs reads --snapshots: the JSON itself when it starts with
// '[', else the name of a JSON file. Empty: no collectors.
func loadSnapshotSpecs(v string) ([]snapshotapi.Spec, error) {
	if v == "" {
		return nil, nil
	}
	b := []byte(v)
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("[")) {
		var err error
		if b, err = os.ReadFile(v); err != nil {
			return nil, err
		}
	}
	return snapshotapi.ParseSpecs(b)
}

// mountSnapshots hosts the collectors of specs on api, their NATS feeds on
// nc. api's Drain drains them; the returned function stops the feeds, to be
// called before nc is closed.
func mountSnapshots(api *httpapi.Server, specs []snapshotapi.Spec, nc *nats.Conn, log *slog.Logger) (func() error, error) {
	if len(specs) == 0 {
		return func() error { return nil }, nil
	}
	svc, err := snapshotapi.New(&snapshotapi.Config{Specs: specs, NATS: nc, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := api.Mount(svc); err != nil {
		svc.Close()
		return nil, err
	}
	return svc.Close, nil
}
