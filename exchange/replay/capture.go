package replay

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"time"
)

// Line is one captured message.
type Line struct {
	// Time is when the message was received.
	Time time.Time
	// URL is the request URL of a REST response; empty for a WebSocket
	// message.
	URL string
	// Body is the WebSocket message or the response body. It is valid until
	// the next call to [CaptureReader.Next].
	Body []byte
	// Number is the line's number in its file, from 1.
	Number int
}

// MaxLine bounds a capture line (a REST depth image of 5000 levels a side
// is about 200 KB). A longer line is skipped and counted.
const MaxLine = 16 << 20

// CaptureReader reads a capture file line by line. A line is either
//
//	<receive time in Unix seconds>: <WebSocket message as received>
//	<REST request URL> -> <receive time in Unix seconds>: <response body>
//
// such as "1700000000.123456: {…}"; any other line (a connection note, an
// empty line) is skipped and counted. The zero value is not usable; create
// one with NewCaptureReader. A CaptureReader is not safe for concurrent use.
type CaptureReader struct {
	r       *bufio.Reader
	buf     []byte
	line    int
	skipped int
	long    int
}

// NewCaptureReader returns a reader of the capture lines in r.
func NewCaptureReader(r io.Reader) *CaptureReader {
	return &CaptureReader{r: bufio.NewReaderSize(r, 64<<10)}
}

// Skipped returns how many lines were not capture lines so far, and how many
// of them were longer than MaxLine.
func (c *CaptureReader) Skipped() (skipped, tooLong int) { return c.skipped, c.long }

// Next returns the next capture line, or io.EOF after the last. Other errors
// are the underlying reader's.
func (c *CaptureReader) Next() (Line, error) {
	for {
		raw, err := c.readLine()
		if raw == nil && err != nil {
			return Line{}, err
		}
		if raw == nil { // too long, skipped
			continue
		}
		if l, ok := ParseLine(raw); ok {
			l.Number = c.line
			return l, nil
		}
		c.skipped++
		if err != nil {
			return Line{}, err
		}
	}
}

// readLine returns the next line without its line ending, nil for a line
// over MaxLine (counted), and io.EOF with a nil line at the end.
func (c *CaptureReader) readLine() ([]byte, error) {
	c.buf = c.buf[:0]
	tooLong := false
	for {
		frag, err := c.r.ReadSlice('\n')
		if !tooLong {
			if len(c.buf)+len(frag) > MaxLine {
				tooLong = true
				c.buf = c.buf[:0]
			} else {
				c.buf = append(c.buf, frag...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err != nil && len(c.buf) == 0 && !tooLong:
			return nil, err
		}
		c.line++
		if tooLong {
			c.skipped++
			c.long++
			if err != nil {
				return nil, err
			}
			return nil, nil
		}
		return bytes.TrimRight(c.buf, "\r\n"), nil
	}
}

// ParseLine parses one capture line (see [CaptureReader]); ok is false if it
// is not one. The Line's Body aliases line.
func ParseLine(line []byte) (l Line, ok bool) {
	rest := line
	if i := bytes.Index(line, []byte(" -> ")); i > 0 && bytes.Contains(line[:i], []byte("://")) && !bytes.ContainsAny(line[:i], " \t") {
		l.URL = string(line[:i])
		rest = line[i+4:]
	}
	colon := bytes.Index(rest, []byte(": "))
	if colon <= 0 {
		return Line{}, false
	}
	t, err := parseUnix(rest[:colon])
	if err != nil {
		return Line{}, false
	}
	l.Time = t
	l.Body = rest[colon+2:]
	if len(bytes.TrimSpace(l.Body)) == 0 {
		return Line{}, false
	}
	return l, true
}

// parseUnix parses seconds since the Unix epoch with an optional fraction
// ("1700000000.123456"), truncated to the nanosecond.
func parseUnix(b []byte) (time.Time, error) {
	const maxSec = 1 << 33 // year 2242
	var sec, ns int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		sec = sec*10 + int64(b[i]-'0')
		if sec >= maxSec {
			return time.Time{}, errors.New("receive time out of range")
		}
	}
	if i == 0 {
		return time.Time{}, errors.New("receive time: want Unix seconds")
	}
	if i < len(b) {
		if b[i] != '.' || i == len(b)-1 {
			return time.Time{}, errors.New("receive time: want Unix seconds")
		}
		digits := 0
		for i++; i < len(b); i++ {
			if b[i] < '0' || b[i] > '9' {
				return time.Time{}, errors.New("receive time: want Unix seconds")
			}
			if digits < 9 {
				ns = ns*10 + int64(b[i]-'0')
				digits++
			}
		}
		for ; digits < 9; digits++ {
			ns *= 10
		}
	}
	return time.Unix(sec, ns).UTC(), nil
}
