package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// taskMsg is a task message as the broker handles it: a *pulled from its
// own pull requests, or a jetstream.Msg (delayed tasks are fetched with the
// JetStream client).
type taskMsg interface {
	Data() []byte
	Headers() nats.Header
	Metadata() (*jetstream.MsgMetadata, error)
	Ack() error
	Nak() error
	NakWithDelay(time.Duration) error
	InProgress() error
	Term() error
}

// puller makes the pull requests of the broker's claims. The JetStream
// client's Fetch subscribes to a new inbox, starts a goroutine and arms a
// timer per message for every request; a claim is a no-wait request whose
// answer comes at once, so the puller keeps a pool of inbox subscriptions
// and lends one to each request: no subscription, goroutine or timer per
// claim. (The server delivers a JetStream message
// with its own subject, so only the subscription tells its request.) A
// request can also be no-wait and bounded in time at once (the server waits
// only when it has nothing), which the JetStream client cannot ask.
//
// Each subscription delivers to a channel that the claiming goroutine reads
// itself: the connection's reader hands a message straight to the claim,
// with no subscription goroutine in between (one goroutine switch less
// between a task's arrival and its run, on a lone task's round trip). The
// channel holds a whole request's answer (pullMax messages and a status),
// so the reader never finds it full; a request asks for at most pullMax.
type puller struct {
	nc  *nats.Conn
	api string // the JetStream API prefix, "$JS.API." by default

	mu     sync.Mutex
	free   []*pullSub
	closed bool
}

// pullMax is the most messages one pull request asks for (a claim that
// wants more makes several requests).
const pullMax = 1024

// pullSub is one inbox subscription of the pool. Between requests its
// channel is empty: a request the server ended (a status, or every message
// it asked for) left nothing behind, and a subscription whose request was
// given up is dropped, not reused.
type pullSub struct {
	inbox string
	sub   *nats.Subscription
	ch    chan *nats.Msg // see puller: sized for a whole answer
}

func newPuller(js jetstream.JetStream) *puller {
	o := js.Options()
	api := jetstream.DefaultAPIPrefix
	switch {
	case o.APIPrefix != "":
		api = strings.TrimSuffix(o.APIPrefix, ".") + "."
	case o.Domain != "":
		api = "$JS." + o.Domain + ".API."
	}
	return &puller{nc: js.Conn(), api: api}
}

// get lends a subscription, subscribing a new one if none is free.
func (p *puller) get() (*pullSub, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errClosed
	}
	if n := len(p.free); n > 0 {
		ps := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return ps, nil
	}
	p.mu.Unlock()
	ps := &pullSub{inbox: p.nc.NewInbox(), ch: make(chan *nats.Msg, pullMax+1)}
	sub, err := p.nc.ChanSubscribe(ps.inbox, ps.ch)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: subscribing to pull replies: %w", err)
	}
	ps.sub = sub
	return ps, nil
}

// put returns a subscription whose request ended by the server's word; one
// whose request it gave up on may still receive that request's messages,
// and is dropped: the messages already in its channel are handed back.
func (p *puller) put(ps *pullSub, clean bool) {
	p.mu.Lock()
	if clean && !p.closed {
		p.free = append(p.free, ps)
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	_ = ps.sub.Unsubscribe()
	for {
		select {
		case m := <-ps.ch:
			if m.Reply != "" && pullStatus(m) == "" {
				_ = p.nc.Publish(m.Reply, ackNak)
			}
		default:
			return
		}
	}
}

// nextSubj is the subject of the next-message API of a stream's consumer.
func (p *puller) nextSubj(stream, consumer string) string {
	return p.api + "CONSUMER.MSG.NEXT." + stream + "." + consumer
}

// pullStatus returns the status of a pull request's status message ("404",
// "408", ...), or "" for a JetStream message.
func pullStatus(m *nats.Msg) string {
	if len(m.Data) == 0 && m.Reply == "" {
		return m.Header.Get("Status")
	}
	return ""
}

// fetch asks a consumer, by the subject of its next-message API (made once
// per queue by nextSubj), for up to want messages (at most pullMax) without
// waiting for more than are ready; with wait > 0, when none is ready it
// waits up to wait for the first. It returns what came even with an error
// (those messages are the caller's to handle).
func (p *puller) fetch(ctx context.Context, nextSubj string, want int, wait, timeout time.Duration) ([]taskMsg, error) {
	want = min(want, pullMax)
	ps, err := p.get()
	if err != nil {
		return nil, err
	}
	req := make([]byte, 0, 64)
	req = append(req, `{"batch":`...)
	req = strconv.AppendInt(req, int64(want), 10)
	req = append(req, `,"no_wait":true`...)
	if wait > 0 {
		req = append(req, `,"expires":`...)
		req = strconv.AppendInt(req, int64(wait), 10)
	}
	req = append(req, '}')
	var msgs []taskMsg
	clean := false // ended by the server's word
	if err = p.nc.PublishRequest(nextSubj, ps.inbox, req); err == nil {
		t := time.NewTimer(wait + timeout)
	read:
		for {
			select {
			case m := <-ps.ch:
				switch status := pullStatus(m); status {
				case "":
					msgs = append(msgs, &pulled{m: m, nc: p.nc})
					if len(msgs) < want {
						continue
					}
				case "100": // an idle heartbeat or flow control
					continue
				case "404", "408": // no (more) messages; the request expired
				default:
					err = fmt.Errorf("pull request: status %s %s", status, m.Header.Get("Description"))
				}
				clean = true
				break read
			case <-t.C:
				err = errNoAck
				break read
			case <-ctx.Done():
				err = context.Cause(ctx)
				break read
			}
		}
		t.Stop()
	}
	if !clean {
		// Given up: what came meanwhile is the caller's, as if read in
		// time; put hands back what comes until it unsubscribes.
		for len(ps.ch) > 0 {
			if m := <-ps.ch; pullStatus(m) == "" {
				msgs = append(msgs, &pulled{m: m, nc: p.nc})
			}
		}
	}
	p.put(ps, clean && err == nil)
	return msgs, err
}

func (p *puller) close() error {
	p.mu.Lock()
	p.closed = true
	free := p.free
	p.free = nil
	p.mu.Unlock()
	var errs []error
	for _, ps := range free {
		if err := ps.sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var (
	ackAck  = []byte("+ACK")
	ackNak  = []byte("-NAK")
	ackWPI  = []byte("+WPI")
	ackTerm = []byte("+TERM")
)

// pulled is a task message from a pull request; its acknowledgements are
// publishes to its reply subject, as the JetStream client's are.
type pulled struct {
	m  *nats.Msg
	nc *nats.Conn
}

func (p *pulled) Data() []byte         { return p.m.Data }
func (p *pulled) Headers() nats.Header { return p.m.Header }
func (p *pulled) Ack() error           { return p.nc.Publish(p.m.Reply, ackAck) }
func (p *pulled) Nak() error           { return p.nc.Publish(p.m.Reply, ackNak) }
func (p *pulled) InProgress() error    { return p.nc.Publish(p.m.Reply, ackWPI) }
func (p *pulled) Term() error          { return p.nc.Publish(p.m.Reply, ackTerm) }

func (p *pulled) NakWithDelay(d time.Duration) error {
	return p.nc.Publish(p.m.Reply, []byte(`-NAK {"delay":`+strconv.FormatInt(int64(d), 10)+`}`))
}

// Metadata reads the delivery count and stream sequence from the reply
// subject (the only fields the broker uses).
func (p *pulled) Metadata() (*jetstream.MsgMetadata, error) {
	delivered, seq, err := parseAckReply(p.m.Reply)
	if err != nil {
		return nil, err
	}
	md := &jetstream.MsgMetadata{NumDelivered: delivered}
	md.Sequence.Stream = seq
	return md, nil
}

// parseAckReply reads the delivery count and the stream sequence of a
// JetStream message from its reply subject:
// "$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>",
// or with "<domain>.<account hash>." after "$JS.ACK." and a random token at
// the end (11 or 12 tokens).
func parseAckReply(reply string) (delivered, seq uint64, err error) {
	rest, ok := strings.CutPrefix(reply, "$JS.ACK.")
	if !ok {
		return 0, 0, fmt.Errorf("reply subject %q is not a JetStream acknowledgement subject", reply)
	}
	tok := strings.Split(rest, ".")
	var d, s string
	switch len(tok) {
	case 7:
		d, s = tok[2], tok[3]
	case 9, 10:
		d, s = tok[4], tok[5]
	default:
		return 0, 0, fmt.Errorf("reply subject %q has %d tokens after $JS.ACK.: want 7, 9 or 10", reply, len(tok))
	}
	if delivered, err = strconv.ParseUint(d, 10, 64); err == nil && delivered > 0 {
		if seq, err = strconv.ParseUint(s, 10, 64); err == nil && seq > 0 {
			return delivered, seq, nil
		}
	}
	return 0, 0, fmt.Errorf("reply subject %q: delivery count %q or stream sequence %q is not a positive number", reply, d, s)
}
