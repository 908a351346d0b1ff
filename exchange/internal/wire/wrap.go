// Package wire holds what the venue decoders share and users need not see:
// error wrapping and checksum buffers.
package wire

import (
	"errors"
	"fmt"

	"github.com/gather-go/gather/exchange"
)

// Wrap returns err with context prefixed, wrapping [exchange.ErrFormat]
// unless err already wraps it or [exchange.ErrDecimal]: a decoder's errors
// then always say which of the two went wrong.
func Wrap(context string, err error) error {
	if errors.Is(err, exchange.ErrFormat) || errors.Is(err, exchange.ErrDecimal) {
		return fmt.Errorf("%s: %w", context, err)
	}
	return fmt.Errorf("%w: %s: %v", exchange.ErrFormat, context, err)
}
