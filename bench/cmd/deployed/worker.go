package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gather-go/gather/queue/natsbroker/natsserver"
)

// worker is the worker role: start one worker of a Go system, print "ready" on
// stdout, and run until SIGTERM, SIGINT or the end of stdin (the driver died), then
// shut down gracefully.
func worker(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	name := fs.String("system", "", "the system: natsbroker, natsbroker-unpacked, jetstream, asynq or river")
	var a addrs
	a.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	sys, ok := goSystems[*name]
	if !ok || sys.work == nil {
		return fmt.Errorf("%w: -system %q has no worker process: want one of %s", errUsage, *name, strings.Join(goSystemNames(), ", "))
	}
	setup, cancel := context.WithTimeout(ctx, time.Minute)
	stop, err := sys.work(setup, a)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: starting: %w", *name, err)
	}
	fmt.Println("ready")
	waitForEnd(ctx)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return stop(ctx)
}

// waitForEnd returns when ctx ends (a signal) or stdin reaches its end, as it does
// when the driver that holds its other end exits.
func waitForEnd(ctx context.Context) {
	eof := make(chan struct{})
	go func() { // ends with the process: a blocked read of stdin cannot be interrupted
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(eof)
	}()
	select {
	case <-ctx.Done():
	case <-eof:
	}
}

// natsd is the NATS server role: gather's embedded nats-server with a file store
// in -dir (default settings: the store fsyncs every 2 minutes), listening on a
// free 127.0.0.1 port. It prints "ready URL" on stdout and runs until SIGTERM,
// SIGINT or the end of stdin.
func natsd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("natsd", flag.ContinueOnError)
	dir := fs.String("dir", "", "JetStream store directory (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("%w: -dir is required: the JetStream store directory", errUsage)
	}
	setup, cancel := context.WithTimeout(ctx, time.Minute)
	srv, err := natsserver.Start(setup, &natsserver.Config{Dir: *dir, Listen: "127.0.0.1:0"})
	cancel()
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	fmt.Println("ready", srv.ClientURL())
	waitForEnd(ctx)
	return nil
}
