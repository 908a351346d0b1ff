package kinds

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gather-go/gather/queue"
)

// Defaults of HTTPConfig.
const (
	DefaultHTTPMaxBody = 1 << 20
	DefaultHTTPTimeout = 30 * time.Second
	MaxHTTPTimeout     = 10 * time.Minute
)

// HTTPConfig configures the http kind.
type HTTPConfig struct {
	// MaxBody is the most bytes of a response body read; a longer body is
	// cut there and the result says so (truncated). Default
	// DefaultHTTPMaxBody.
	MaxBody int64
	// Timeout is a request's timeout when its input gives none. Default
	// DefaultHTTPTimeout.
	Timeout time.Duration
	// Client sends the requests. Default: a client that follows up to 10
	// redirects, like http.DefaultClient. BlockPrivate does not apply to
	// a Client given here.
	Client *http.Client
	// BlockPrivate refuses connections to loopback, private, link-local,
	// shared (100.64.0.0/10), reserved and unspecified addresses, and to
	// IPv6 addresses embedding one of them (NAT64, 6to4), checked on the address dialled (so after
	// DNS, redirects included): set it when those who submit tasks must
	// not reach the workers' own network. Default false.
	BlockPrivate bool
}

// HTTPInput is an http task: the request to send. Method defaults to GET
// (POST when Body is set); Timeout is a duration string, at most
// MaxHTTPTimeout.
type HTTPInput struct {
	URL     string            `json:"url"`
	Method  string            `json:"method,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	Timeout string            `json:"timeout,omitempty"`
}

// HTTPOutput is an http task's result: the response. Body is the text of
// the body when it is UTF-8; otherwise BodyBase64 holds it (JSON encodes
// []byte as base64). Truncated is set when the body was longer than
// HTTPConfig.MaxBody.
type HTTPOutput struct {
	Status     int               `json:"status"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body,omitempty"`
	BodyBase64 []byte            `json:"body_base64,omitempty"`
	Truncated  bool              `json:"truncated,omitempty"`
}

// HTTP returns the kind "http": it sends the request its input describes
// and returns the response. A transport error or a 5xx status fails the
// attempt (and is retried); any other status is a result. A bad URL or
// method fails permanently.
func HTTP(cfg HTTPConfig) Def {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = DefaultHTTPMaxBody
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultHTTPTimeout
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{}
		if cfg.BlockPrivate {
			tr := http.DefaultTransport.(*http.Transport).Clone()
			tr.Proxy = nil // a proxy would dial for us, unchecked
			tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, Control: refusePrivate}).DialContext
			client.Transport = tr
		}
	}
	k := queue.NewKind[HTTPInput, HTTPOutput]("http")
	return Func(k, "sends an HTTP request {\"url\",\"method\",\"headers\",\"body\",\"timeout\"} and returns the response; 5xx fails",
		func(ctx context.Context, in HTTPInput) (HTTPOutput, error) {
			return fetch(ctx, client, cfg, in)
		})
}

func fetch(ctx context.Context, client *http.Client, cfg HTTPConfig, in HTTPInput) (HTTPOutput, error) {
	var out HTTPOutput
	u, err := url.Parse(in.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return out, queue.Permanent(fmt.Errorf("url %q: want an absolute http or https URL", in.URL))
	}
	method := strings.ToUpper(in.Method)
	switch method {
	case "":
		method = http.MethodGet
		if in.Body != "" {
			method = http.MethodPost
		}
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		return out, queue.Permanent(fmt.Errorf("method %q: want GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS", in.Method))
	}
	timeout := cfg.Timeout
	if in.Timeout != "" {
		d, err := time.ParseDuration(in.Timeout)
		if err != nil || d <= 0 || d > MaxHTTPTimeout {
			return out, queue.Permanent(fmt.Errorf("timeout %q: want a positive duration up to %v", in.Timeout, MaxHTTPTimeout))
		}
		timeout = d
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in.Body != "" {
		body = strings.NewReader(in.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return out, queue.Permanent(err)
	}
	for k, v := range in.Headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, cfg.MaxBody+1))
	if err != nil {
		return out, fmt.Errorf("reading the response of %s %s: %w", method, in.URL, err)
	}
	if int64(len(b)) > cfg.MaxBody {
		b, out.Truncated = b[:cfg.MaxBody], true
	}
	if resp.StatusCode >= 500 {
		return out, fmt.Errorf("%s %s: %s: %s", method, in.URL, resp.Status, snippet(b))
	}
	out.Status = resp.StatusCode
	out.Headers = make(map[string]string, len(resp.Header))
	for k, v := range resp.Header {
		out.Headers[k] = strings.Join(v, ", ")
	}
	if utf8.Valid(b) {
		out.Body = string(b)
	} else {
		out.BodyBase64 = b
	}
	return out, nil
}

// refusePrivate is a net.Dialer's Control that refuses the addresses
// HTTPConfig.BlockPrivate names.
func refusePrivate(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	if isPrivate(ip) {
		return queue.Permanent(fmt.Errorf("address %s is private: this worker refuses loopback, private and link-local addresses", ip))
	}
	return nil
}

// notPublic are the ranges, besides those netip.Addr's methods name, that
// reach a host's own network: "this network", shared (carrier-grade NAT,
// where some clouds serve their metadata), IETF protocol assignments,
// benchmarking, reserved and broadcast.
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// isPrivate reports whether ip is one HTTPConfig.BlockPrivate refuses,
// looking through the IPv6 forms that embed an IPv4 address (mapped,
// NAT64, 6to4).
func isPrivate(ip netip.Addr) bool {
	ip = ip.Unmap()
	if ip.Is6() {
		b := ip.As16()
		switch {
		case netip.MustParsePrefix("64:ff9b::/96").Contains(ip):
			return isPrivate(netip.AddrFrom4([4]byte(b[12:16])))
		case netip.MustParsePrefix("64:ff9b:1::/48").Contains(ip):
			return true // local-use NAT64: any IPv4 address, at any place
		case netip.MustParsePrefix("2002::/16").Contains(ip):
			return isPrivate(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() || ip.IsMulticast() {
		return true
	}
	for _, p := range notPublic {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func snippet(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) > 200 {
		b = b[:200]
	}
	if !utf8.Valid(b) {
		return fmt.Sprintf("%d bytes", len(b))
	}
	return string(b)
}
