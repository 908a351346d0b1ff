package cli_test

import (
	"context"
	"os"
	"strings"

	"github.com/gather-go/gather/cli"
	"github.com/gather-go/gather/kinds"
	"github.com/gather-go/gather/queue"
)

// A gather program with a kind of its own beside the built-in ones; its
// main would be cli.Main(upper).
func ExampleProgram() {
	upper := kinds.Func(queue.NewKind[string, string]("upper"), "upper-cases a string",
		func(ctx context.Context, s string) (string, error) { return strings.ToUpper(s), nil })
	p := &cli.Program{Kinds: []kinds.Def{upper}}
	p.Run(context.Background(), []string{"kinds"}, os.Stdin, os.Stdout, os.Stderr)
	// Output:
	// http     sends an HTTP request {"url","method","headers","body","timeout"} and returns the response; 5xx fails
	// exec     runs an allowed command {"command","args","stdin"}; refused without an allow-list
	// echo     returns its input
	// sleep    waits for a duration ("250ms" or {"duration","fail","value"}), then returns or fails
	// upper    upper-cases a string
}
