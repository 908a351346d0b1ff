package cli

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// apiFlags are how a command reaches the HTTP API.
type apiFlags struct {
	server, token, ca string
}

func (a *apiFlags) add(fs *flag.FlagSet) {
	stringVar(fs, &a.server, "server", "GATHER_SERVER", "http://127.0.0.1:8080", "URL of gather serve's API")
	secretVar(fs, &a.token, "token", "GATHER_TOKEN", "the server's bearer token")
	stringVar(fs, &a.ca, "ca", "GATHER_CA", "", "PEM file of the CA that signed the server's TLS certificate (default: the system's)")
}

// apiClient calls the HTTP API.
type apiClient struct {
	base  *url.URL
	token string
	hc    *http.Client
}

func (a *apiFlags) client() (*apiClient, error) {
	u, err := url.Parse(a.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want an http or https URL such as http://127.0.0.1:8080", a.server)
	}
	hc := &http.Client{}
	if a.ca != "" {
		pem, err := os.ReadFile(a.ca)
		if err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca %s: no PEM certificate in it", a.ca)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		hc.Transport = tr
	}
	return &apiClient{base: u, token: a.token, hc: hc}, nil
}

// apiError is a problem the server answered with.
type apiError struct {
	Status int    `json:"status"`
	Code   string `json:"code"`
	Detail string `json:"detail"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("server: %d %s: %s", e.Status, e.Code, e.Detail)
}

// do sends a request and returns the response of a 2xx, or an error (an
// *apiError for a problem the server answered with).
func (c *apiClient) do(ctx context.Context, method, path string, body []byte, hdr http.Header) (*http.Response, error) {
	u, err := url.Parse(strings.TrimSuffix(c.base.String(), "/") + path)
	if err != nil {
		return nil, err
	}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), r)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var ae apiError
	if json.Unmarshal(b, &ae) != nil || ae.Code == "" {
		ae = apiError{Status: resp.StatusCode, Code: "http", Detail: strings.TrimSpace(string(b))}
	}
	return nil, &ae
}

// getJSON sends a request and decodes the 2xx response into v.
func (c *apiClient) call(ctx context.Context, method, path string, body []byte, v any) error {
	resp, err := c.do(ctx, method, path, body, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if v == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// batchStatus is the API's answer about a batch.
type batchStatus struct {
	ID       string            `json:"id"`
	Kind     string            `json:"kind"`
	Queue    string            `json:"queue"`
	Status   string            `json:"status"`
	Progress progressJSON      `json:"progress"`
	Results  []json.RawMessage `json:"results,omitempty"`
}

type progressJSON struct {
	Size     int `json:"size"`
	Done     int `json:"done"`
	Failed   int `json:"failed"`
	Canceled int `json:"canceled"`
	Pending  int `json:"pending"`
}

// resultJSON is one item's result in the API.
type resultJSON struct {
	OK    bool            `json:"ok"`
	Value json.RawMessage `json:"value"`
	Error json.RawMessage `json:"error"`
}

// event is one server-sent event.
type event struct {
	id, name string
	data     []byte
}

// follow reads the batch's event stream from event after, calling fn for
// each, reconnecting with Last-Event-ID when the connection breaks, until
// the "end" event (returned), ctx ends, or reconnecting fails for a minute.
func (c *apiClient) follow(ctx context.Context, id string, after int, fn func(ev *event) error) (*event, error) {
	var lastErr error
	failingSince := time.Time{}
	for attempt := 0; ; attempt++ {
		hdr := http.Header{"Accept": {"text/event-stream"}}
		if after > 0 {
			hdr.Set("Last-Event-ID", strconv.Itoa(after))
		}
		resp, err := c.do(ctx, "GET", "/v1/batches/"+url.PathEscape(id)+"/events", nil, hdr)
		if err == nil {
			var end *event
			end, err = readEvents(resp.Body, func(ev *event) error {
				if n, perr := strconv.Atoi(ev.id); perr == nil {
					after = n
				}
				failingSince = time.Time{}
				return fn(ev)
			})
			resp.Body.Close()
			if end != nil {
				return end, nil
			}
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		var ae *apiError
		if errors.As(err, &ae) && ae.Status != http.StatusServiceUnavailable && ae.Status != http.StatusTooManyRequests {
			return nil, err
		}
		var fe *fnError
		if errors.As(err, &fe) {
			return nil, fe.err
		}
		lastErr = err
		if failingSince.IsZero() {
			failingSince = time.Now()
		} else if time.Since(failingSince) > time.Minute {
			return nil, fmt.Errorf("following batch %s: %w", id, lastErr)
		}
		t := time.NewTimer(min(time.Duration(attempt+1)*200*time.Millisecond, 3*time.Second))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, context.Cause(ctx)
		}
	}
}

type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }

// readEvents parses a text/event-stream, calling fn per event; it returns
// the "end" event, or the read error (io.ErrUnexpectedEOF when the stream
// ends without one).
func readEvents(r io.Reader, fn func(ev *event) error) (*event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var ev event
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if ev.name == "" && ev.data == nil {
				continue
			}
			if ev.name == "end" {
				return &ev, nil
			}
			if ev.name == "error" {
				return nil, fmt.Errorf("server: %s", ev.data)
			}
			if err := fn(&ev); err != nil {
				return nil, &fnError{err}
			}
			ev = event{}
		case line[0] == ':':
		default:
			k, v, _ := bytes.Cut(line, []byte(":"))
			v = bytes.TrimPrefix(v, []byte(" "))
			switch string(k) {
			case "id":
				ev.id = string(v)
			case "event":
				ev.name = string(v)
			case "data":
				ev.data = append(ev.data, v...)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, io.ErrUnexpectedEOF
}
