package test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gantryhq/gantry/client"
)

func TestClientReservationCalls(t *testing.T) {
	s := startClientServer(t, clientConfig())
	ctx := t.Context()
	g, err := s.c.AcquireReservation(ctx, "n", "a", 30*time.Second)
	if err != nil || g.Token <= 0 || g.Holder != "a" || g.TTL != 30*time.Second {
		t.Fatalf("AcquireReservation = %+v, %v", g, err)
	}
	_, err = s.c.AcquireReservation(ctx, "n", "b", 30*time.Second)
	var held *client.ReservationHeldError
	if !errors.As(err, &held) || held.Holder != "a" || !held.ExpiresAt.Equal(g.ExpiresAt) || !errors.Is(err, client.ErrConflict) {
		t.Fatalf("AcquireReservation by b = %v, want a ReservationHeldError naming a until %v", err, g.ExpiresAt)
	}
	if _, err := s.c.RenewReservation(ctx, "n", "a", g.Token, 10*time.Second); err != nil {
		t.Fatalf("RenewReservation: %v", err)
	}
	if err := s.c.ReleaseReservation(ctx, "n", "a", g.Token); err != nil {
		t.Fatalf("ReleaseReservation: %v", err)
	}
	if err := s.c.ReleaseReservation(ctx, "n", "a", g.Token); !errors.Is(err, client.ErrReservationLost) || !errors.Is(err, client.ErrConflict) {
		t.Errorf("second ReleaseReservation = %v, want ErrReservationLost", err)
	}
	if _, err := s.c.RenewReservation(ctx, "n", "a", g.Token, 10*time.Second); !errors.Is(err, client.ErrReservationLost) {
		t.Errorf("RenewReservation after release = %v, want ErrReservationLost", err)
	}
	if _, err := s.c.AcquireReservation(ctx, "n", "a", 100*time.Hour); !errors.Is(err, client.ErrInvalid) || clientErr(t, err).Field != "ttl_seconds" {
		t.Errorf("AcquireReservation for 100h = %v, want ErrInvalid naming ttl_seconds", err)
	}
	r, err := s.c.GetReservation(ctx, "n")
	if err != nil || r.Holder != "" || len(r.History) != 1 || r.History[0].Ended != "released" {
		t.Errorf("GetReservation = %+v, %v; want free with one released grant", r, err)
	}
	if _, err := s.c.GetReservation(ctx, "never"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("GetReservation(never) = %v, want ErrNotFound", err)
	}
	for i := range 3 {
		if _, err := s.c.AcquireReservation(ctx, fmt.Sprintf("m%d", i), "a", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	for r, err := range s.c.ListReservations(ctx, client.ListReservationsOptions{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, r.Name)
	}
	if got := strings.Join(names, " "); got != "m0 m1 m2 n" {
		t.Errorf("ListReservations = %s, want m0 m1 m2 n", got)
	}
}

func TestClientHoldRenewsAndReleases(t *testing.T) {
	s := startClientServer(t, clientConfig())
	ctx := t.Context()
	var token int64
	err := s.c.Hold(ctx, "job", time.Second, func(ctx context.Context) error {
		// Run for three TTLs: only renewals keep the reservation.
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			r, err := s.c.GetReservation(ctx, "job")
			if err != nil {
				return err
			}
			if r.Holder == "" || (token != 0 && r.Token != token) {
				return fmt.Errorf("the reservation is not held while Hold runs: %+v", r)
			}
			token = r.Token
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Hold = %v", err)
	}
	r, err := s.c.GetReservation(ctx, "job")
	if err != nil {
		t.Fatal(err)
	}
	if r.Holder != "" || len(r.History) != 1 || r.History[0].Ended != "released" || r.History[0].Token != token {
		t.Errorf("after Hold: %+v, want one grant (token %d), released", r, token)
	}
}

// TestClientHoldCancelsWhenRenewalsFail cuts the link to the server while
// Hold runs: the function's context must end by itself, before the
// server's grant expires.
func TestClientHoldCancelsWhenRenewalsFail(t *testing.T) {
	s := startClientServer(t, clientConfig())
	proxy := startTCPProxy(t, strings.TrimPrefix(s.url, "http://"))
	pc, err := client.New("http://"+proxy.Addr(), client.WithToken(s.srv.Token()))
	if err != nil {
		t.Fatal(err)
	}
	const ttl = 5 * time.Second
	var stillHeld bool
	var cause error
	err = pc.Hold(t.Context(), "job", ttl, func(ctx context.Context) error {
		proxy.Cut()
		<-ctx.Done()
		cause = context.Cause(ctx)
		// The server must still hold the grant: the holder stops first.
		r, err := s.c.GetReservation(context.Background(), "job")
		stillHeld = err == nil && r.Holder != ""
		return ctx.Err()
	})
	if !errors.Is(err, client.ErrReservationLost) || !errors.Is(cause, client.ErrReservationLost) {
		t.Fatalf("Hold = %v (cause %v), want ErrReservationLost", err, cause)
	}
	if !stillHeld {
		t.Errorf("the function's context ended after the server's grant expired")
	}
}

// TestClientSingletonExclusive runs three instances of one Singleton whose
// task comes and goes: it must never run on two at once.
func TestClientSingletonExclusive(t *testing.T) {
	s := startClientServer(t, clientConfig())
	ctx, cancel := context.WithCancel(t.Context())
	var running, overlaps atomic.Int32
	var mu sync.Mutex
	runs := map[string]int{}
	var wg sync.WaitGroup
	for i := range 3 {
		holder := fmt.Sprintf("instance-%d", i)
		sg := &client.Singleton{Client: s.c, Name: "exclusive", TTL: time.Second, Holder: holder,
			RetryInterval: 50 * time.Millisecond,
			OnError:       func(err error) { t.Errorf("%s: %v", holder, err) },
			Task: func(ctx context.Context) error {
				if running.Add(1) > 1 {
					overlaps.Add(1)
				}
				defer running.Add(-1)
				mu.Lock()
				runs[holder]++
				mu.Unlock()
				select {
				case <-time.After(150 * time.Millisecond):
				case <-ctx.Done():
				}
				return nil
			}}
		wg.Go(func() {
			if err := sg.Run(ctx); err != nil {
				t.Errorf("%s: Run = %v", holder, err)
			}
		})
	}
	clientWaitFor(t, "the task to run 20 times", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, c := range runs {
			n += c
		}
		return n >= 20
	})
	cancel()
	wg.Wait()
	if n := overlaps.Load(); n != 0 {
		t.Errorf("the task ran on two instances at once %d times", n)
	}
	t.Logf("runs per instance: %v", runs)
}

// Environment of the Singleton process of TestClientSingletonFailover.
const (
	envFailoverChild = "GANTRY_TEST_SINGLETON_CHILD" // the reservation name
	envFailoverTTL   = "GANTRY_TEST_FAILOVER_TTL"    // e.g. "3s"; default 3s
)

// TestClientSingletonFailoverChild is the Singleton holder process of
// TestClientSingletonFailover; it does nothing in a normal run.
func TestClientSingletonFailoverChild(t *testing.T) {
	name := os.Getenv(envFailoverChild)
	if name == "" {
		t.Skip("run by TestClientSingletonFailover")
	}
	c, err := client.FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	sg := &client.Singleton{Client: c, Name: name, TTL: failoverTTL(t), Holder: "child",
		Task: func(ctx context.Context) error {
			fmt.Println("HOLDING")
			<-ctx.Done()
			return nil
		}}
	_ = sg.Run(context.Background()) // until killed
}

func failoverTTL(t *testing.T) time.Duration {
	s := os.Getenv(envFailoverTTL)
	if s == "" {
		return 3 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s=%q: %v", envFailoverTTL, s, err)
	}
	return d
}

// TestClientSingletonFailover runs a Singleton holder in another process,
// kills it (SIGKILL), and measures how soon an instance of this process
// takes over: within TTL + the retry interval (TTL/3) + 1 s.
func TestClientSingletonFailover(t *testing.T) {
	s := startClientServer(t, clientConfig())
	ttl := failoverTTL(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestClientSingletonFailoverChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envFailoverChild+"=failover", envFailoverTTL+"="+ttl.String(),
		client.EnvServer+"="+s.url, client.EnvToken+"="+s.srv.Token())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	holding := make(chan struct{}, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "HOLDING" {
				holding <- struct{}{}
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	select {
	case <-holding:
	case <-exited:
		t.Fatal("the Singleton process exited before holding the reservation")
	case <-time.After(30 * time.Second):
		t.Fatal("timed out waiting for the Singleton process to hold the reservation")
	}

	// The successor, in this process, waits while the child holds.
	ctx, cancel := context.WithCancel(t.Context())
	took := make(chan time.Time, 1)
	sg := &client.Singleton{Client: s.c, Name: "failover", TTL: ttl, Holder: "successor",
		Task: func(ctx context.Context) error {
			took <- time.Now()
			<-ctx.Done()
			return nil
		}}
	done := make(chan error, 1)
	go func() { done <- sg.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("successor's Run = %v", err)
		}
	}()
	// Kill at a random phase of the holder's renewals and the successor's
	// tries, so that repeated runs sample the failover time's range.
	select {
	case <-took:
		t.Fatal("the successor ran while the other process held the reservation")
	case <-time.After(ttl + rand.N(ttl/3)):
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	<-exited
	var at time.Time
	select {
	case at = <-took:
	case <-time.After(ttl + 30*time.Second):
		t.Fatal("no successor took over")
	}
	failover := at.Sub(killed)
	bound := ttl + ttl/3 + time.Second
	t.Logf("Singleton failover after SIGKILL: %v (TTL %v, retry %v, bound %v)", failover.Round(time.Millisecond), ttl, ttl/3, bound)
	if failover > bound {
		t.Errorf("failover took %v, want at most TTL + retry interval + 1s = %v", failover, bound)
	}
	r, err := s.c.GetReservation(t.Context(), "failover")
	if err != nil || r.Holder != "successor" || len(r.History) < 2 || r.History[1].Holder != "child" || r.History[1].Ended != "expired" {
		t.Errorf("reservation after failover = %+v, %v; want the successor holding, the child's grant expired", r, err)
	}
}
