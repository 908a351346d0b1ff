package dashboard

import (
	"bytes"
	"sync"
)

// hub fans the dashboard's sections out to the open event streams. Each
// stream keeps only the latest value of each section it has not sent yet,
// so a slow page costs one pending copy per section, never a backlog.
type hub struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	last   map[string][]byte // every section's latest value, for new streams
	order  []string          // the sections in the order first published
	frame  chan struct{}     // closed and replaced after each frame
	closed bool
}

type subscriber struct {
	batches bool // it shows the batch list: the broker's batches are read for it
	mu      sync.Mutex
	pending map[string][]byte
	order   []string
	notify  chan struct{} // size 1: "something is pending"
	gone    bool          // the hub closed
}

func (h *hub) init() {
	h.subs = map[*subscriber]struct{}{}
	h.last = map[string][]byte{}
	h.frame = make(chan struct{})
}

// count returns how many streams are open.
func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// countBatches returns how many streams show the batch list.
func (h *hub) countBatches() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for s := range h.subs {
		if s.batches {
			n++
		}
	}
	return n
}

// publish sends section's value to every stream, unless it equals the last
// one sent.
func (h *hub) publish(section string, data []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.last[section]; ok && bytes.Equal(old, data) {
		return
	}
	if _, ok := h.last[section]; !ok {
		h.order = append(h.order, section)
	}
	h.last[section] = data
	for s := range h.subs {
		if section != "batches" || s.batches {
			s.put(section, data)
		}
	}
}

// endFrame tells the streams that a frame ended (they may re-read what
// they watch).
func (h *hub) endFrame() {
	h.mu.Lock()
	close(h.frame)
	h.frame = make(chan struct{})
	h.mu.Unlock()
}

// frameDone returns the channel closed at the end of the next frame.
func (h *hub) frameDone() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.frame
}

func (s *subscriber) put(section string, data []byte) {
	s.mu.Lock()
	if _, ok := s.pending[section]; !ok {
		s.order = append(s.order, section)
	}
	s.pending[section] = data
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// take returns the pending sections in the order they were first made
// pending, and empties them.
func (s *subscriber) take(dst []section) ([]section, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range s.order {
		dst = append(dst, section{name, s.pending[name]})
	}
	clear(s.pending)
	s.order = s.order[:0]
	return dst, s.gone
}

type section struct {
	name string
	data []byte
}

// join adds a stream, with every section's latest value pending.
func (h *hub) join(batches bool) *subscriber {
	s := &subscriber{batches: batches, pending: map[string][]byte{}, notify: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.gone = true
		s.notify <- struct{}{}
		return s
	}
	for _, name := range h.order {
		if name != "batches" || batches {
			s.put(name, h.last[name])
		}
	}
	h.subs[s] = struct{}{}
	return s
}

func (h *hub) leave(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
}

// close ends every stream.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for s := range h.subs {
		s.mu.Lock()
		s.gone = true
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	clear(h.subs)
}
