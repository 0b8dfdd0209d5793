package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/gantryhq/gantry/client"
)

// Run a nightly export on at most one machine at a time: Hold acquires the
// reservation, renews it while the function runs, cancels the function's
// context if it cannot renew in time, and releases it at the end.
func ExampleClient_Hold() {
	c, err := client.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	err = c.Hold(context.Background(), "nightly-export", 30*time.Second, func(ctx context.Context) error {
		return export(ctx) // stops when ctx is done
	})
	var held *client.ReservationHeldError
	switch {
	case errors.As(err, &held):
		fmt.Println("already running on", held.Holder)
	case errors.Is(err, client.ErrReservationLost):
		log.Fatal("lost the reservation: the export was stopped")
	case err != nil:
		log.Fatal(err)
	}
}

// Keep one consumer of a feed running among all the instances of a
// service: each runs the Singleton; one holds the reservation and runs the
// task, the others take over within TTL + RetryInterval if it dies.
func ExampleSingleton() {
	c, err := client.FromEnv()
	if err != nil {
		log.Fatal(err)
	}
	s := &client.Singleton{
		Client: c,
		Name:   "feed-consumer",
		TTL:    15 * time.Second,
		Task: func(ctx context.Context) error {
			return consume(ctx) // runs until ctx is done
		},
		OnError: func(err error) { log.Println("feed consumer:", err) },
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := s.Run(ctx); err != nil {
		log.Fatal(err)
	}
}

// A reservation held by another holder is a *ReservationHeldError naming
// it; it matches ErrConflict.
func ExampleReservationHeldError() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprint(w, `{"type":"urn:gantry:problem:reservation-held","title":"Conflict","status":409,`+
			`"detail":"reservation nightly is held","holder":"host-a:4242","expires_at":"2026-11-23T10:00:30.000Z"}`)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, client.WithToken("token"))
	if err != nil {
		log.Fatal(err)
	}

	_, err = c.AcquireReservation(context.Background(), "nightly", "host-b:7", 30*time.Second)
	var held *client.ReservationHeldError
	if errors.As(err, &held) {
		fmt.Println(errors.Is(err, client.ErrConflict), held.Holder, held.ExpiresAt.Format(time.RFC3339))
	}
	// Output: true host-a:4242 2026-11-23T10:00:30Z
}

func export(ctx context.Context) error  { <-ctx.Done(); return nil }
func consume(ctx context.Context) error { <-ctx.Done(); return nil }
