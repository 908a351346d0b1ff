package natsfeed

import (
	"bytes"
	"testing"
)

// decodeImage never panics or over-allocates on any body, and what it
// decodes encodes back to the same bytes.
func FuzzDecodeImage(f *testing.F) {
	f.Add(appendEntry(appendEntry(nil, "AAPL", []byte(`{"bid":1}`)), "MSFT", nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{4, 'A', 'A'})
	f.Fuzz(func(t *testing.T, body []byte) {
		es, err := decodeImage(body)
		if err != nil {
			return
		}
		var again []byte
		for _, e := range es {
			again = appendEntry(again, e.key, e.val)
		}
		if !bytes.Equal(again, body) && len(body) > 0 {
			// Non-minimal uvarints decode too; the re-encoding must
			// decode to the same entries.
			es2, err := decodeImage(again)
			if err != nil || len(es2) != len(es) {
				t.Fatalf("re-encoded image does not decode alike: %v", err)
			}
			for i := range es {
				if es[i].key != es2[i].key || !bytes.Equal(es[i].val, es2[i].val) {
					t.Fatalf("entry %d differs after re-encoding", i)
				}
			}
		}
	})
}
