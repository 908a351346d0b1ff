package natsbroker

import (
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/gather-go/gather/queue"
)

// tok makes s a valid subject token and stream-name part: letters, digits,
// '-' and '_' stay, every other byte becomes '=' and two hex digits.
func tok(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !tokByte(s[i]) {
			clean = false
			break
		}
	}
	if clean && s != "" {
		return s
	}
	var sb strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; tokByte(c) {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('=')
			sb.WriteString(strings.ToUpper(hex.EncodeToString([]byte{c})))
		}
	}
	if sb.Len() == 0 {
		return "="
	}
	return sb.String()
}

func tokByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_'
}

// levelSubj is where messages of k tasks of level l wait to be claimed:
// "<prefix>.q.<queue>.<l>" for one task, with ".<k>" appended for more, so
// that Depth counts tasks from the stream's per-subject totals.
func (b *Broker) levelSubj(q *bqueue, l queue.Priority, k int) string {
	return packSubj(b.prefix+".q."+q.tok+"."+strconv.Itoa(int(l)), k)
}

// delaySubj is where messages of k tasks of level l wait until they are due,
// in the queue's delay stream: "<prefix>.qd.<queue>.<l>", with ".<k>" for
// more than one task.
func (b *Broker) delaySubj(q *bqueue, l queue.Priority, k int) string {
	return packSubj(b.prefix+".qd."+q.tok+"."+strconv.Itoa(int(l)), k)
}

func packSubj(base string, k int) string {
	if k == 1 {
		return base
	}
	return base + "." + strconv.Itoa(k)
}

// taskSubj is levelSubj, or delaySubj when delayed.
func (b *Broker) taskSubj(q *bqueue, l queue.Priority, k int, delayed bool) string {
	if delayed {
		return b.delaySubj(q, l, k)
	}
	return b.levelSubj(q, l, k)
}

func (b *Broker) batchSubj(id string) string { return b.prefix + ".b." + tok(id) }

func (b *Broker) resSubj(id string) string { return b.prefix + ".r." + tok(id) }

func (b *Broker) attSubj(id string, i int) string {
	return b.prefix + ".a." + tok(id) + "." + strconv.Itoa(i)
}

func (b *Broker) deadSubj(qname, id string, i int) string {
	return b.prefix + ".d." + tok(qname) + "." + tok(id) + "." + strconv.Itoa(i)
}

// untok inverts tok.
func untok(t string) (string, bool) {
	if t == "=" {
		return "", true
	}
	if !strings.Contains(t, "=") {
		return t, true
	}
	var sb strings.Builder
	for i := 0; i < len(t); i++ {
		if t[i] != '=' {
			sb.WriteByte(t[i])
			continue
		}
		if i+2 >= len(t) {
			return "", false
		}
		c, err := hex.DecodeString(t[i+1 : i+3])
		if err != nil {
			return "", false
		}
		sb.WriteByte(c[0])
		i += 2
	}
	return sb.String(), true
}
