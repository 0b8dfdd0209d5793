package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeReservations is an in-memory reservation server for one name, with
// latency and outages, reached through a RoundTripper so that it runs in
// a synctest bubble.
type fakeReservations struct {
	mu       sync.Mutex
	latency  time.Duration // before each answer
	down     bool          // renewals answer 503
	conflict bool          // renewals answer 409
	holder   string
	token    int64
	expires  time.Time
	renewals int
	releases int
}

func (f *fakeReservations) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	latency := f.latency
	f.mu.Unlock()
	select {
	case <-time.After(latency):
	case <-r.Context().Done():
		return nil, r.Context().Err()
	}
	var body struct {
		Holder     string  `json:"holder"`
		Token      int64   `json:"token"`
		TTLSeconds float64 `json:"ttl_seconds"`
	}
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &body)
	}
	ttl := time.Duration(body.TTLSeconds * float64(time.Second))
	w := httptest.NewRecorder()
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	grant := func() {
		writeJSON(w, 200, fmt.Sprintf(`{"name":"n","tenant":"default","holder":%q,"token":%d,"ttl_seconds":%g}`, f.holder, f.token, body.TTLSeconds))
	}
	switch {
	case strings.HasSuffix(r.URL.Path, "/acquire"):
		if f.holder != "" && f.holder != body.Holder && now.Before(f.expires) {
			writeProblem(w, 409, fmt.Sprintf(`{"type":"urn:gantry:problem:reservation-held","title":"Conflict","status":409,"holder":%q,"expires_at":%q}`,
				f.holder, f.expires.UTC().Format(time.RFC3339Nano)))
			break
		}
		if f.holder != body.Holder || !now.Before(f.expires) {
			f.token++
		}
		f.holder, f.expires = body.Holder, now.Add(ttl)
		grant()
	case strings.HasSuffix(r.URL.Path, "/renew"):
		f.renewals++
		switch {
		case f.down:
			writeProblem(w, 503, `{"title":"Service Unavailable","status":503}`)
		case f.conflict || f.holder != body.Holder || f.token != body.Token || !now.Before(f.expires):
			writeProblem(w, 409, `{"type":"urn:gantry:problem:reservation-lost","title":"Conflict","status":409}`)
		default:
			f.expires = now.Add(ttl)
			grant()
		}
	case strings.HasSuffix(r.URL.Path, "/release"):
		f.releases++
		if f.holder == body.Holder && f.token == body.Token && now.Before(f.expires) {
			f.holder = ""
			w.WriteHeader(204)
		} else {
			writeProblem(w, 409, `{"title":"Conflict","status":409}`)
		}
	default:
		w.WriteHeader(404)
	}
	res := w.Result()
	res.Request = r
	return res, nil
}

func (f *fakeReservations) set(fn func(f *fakeReservations)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func newFakeClient(t *testing.T, f *fakeReservations) *Client {
	t.Helper()
	c, err := New("http://gantry.test", WithToken("t"), WithHTTPClient(&http.Client{Transport: f}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHoldRenewsAndReleases(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeReservations{latency: 10 * time.Millisecond}
		c := newFakeClient(t, f)
		err := c.Hold(t.Context(), "n", 3*time.Second, func(ctx context.Context) error {
			select {
			case <-time.After(10 * time.Second):
				return nil
			case <-ctx.Done():
				return fmt.Errorf("canceled while held: %w", context.Cause(ctx))
			}
		})
		if err != nil {
			t.Fatalf("Hold = %v", err)
		}
		if f.renewals < 9 || f.releases != 1 || f.holder != "" {
			t.Errorf("after Hold: %d renewals, %d releases, holder %q; want >= 9 (every second), 1, none", f.renewals, f.releases, f.holder)
		}
	})
}

// The trust window counts from when the acquire was sent: with a slow
// answer, the function's context ends that much sooner after it starts.
func TestHoldTrustWindowFromSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeReservations{latency: time.Second}
		c := newFakeClient(t, f)
		c.retryWait = time.Millisecond
		start := time.Now()
		var canceledAfter time.Duration
		var cause error
		err := c.Hold(t.Context(), "n", 5*time.Second, func(ctx context.Context) error {
			f.set(func(f *fakeReservations) { f.down = true })
			<-ctx.Done()
			canceledAfter, cause = time.Since(start), context.Cause(ctx)
			return ctx.Err()
		})
		if !errors.Is(err, ErrReservationLost) || !errors.Is(cause, ErrReservationLost) {
			t.Fatalf("Hold = %v (cause %v), want ErrReservationLost", err, cause)
		}
		// TTL 5 s minus the 1 s margin, from the send; not from the answer
		// (which came 1 s later).
		if want := 4 * time.Second; canceledAfter != want {
			t.Errorf("the function's context ended %v after the acquire was sent, want %v", canceledAfter, want)
		}
		if f.renewals < 1 || f.releases != 0 {
			t.Errorf("%d renewals tried, %d releases; want renewals, no release of a lost reservation", f.renewals, f.releases)
		}
	})
}

func TestHoldLostOnConflict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeReservations{}
		c := newFakeClient(t, f)
		start := time.Now()
		taskErr := errors.New("task failed")
		err := c.Hold(t.Context(), "n", 30*time.Second, func(ctx context.Context) error {
			f.set(func(f *fakeReservations) { f.conflict = true })
			<-ctx.Done()
			if d := time.Since(start); d != 10*time.Second {
				t.Errorf("canceled after %v, want at the first renewal (10s)", d)
			}
			return taskErr
		})
		if !errors.Is(err, ErrReservationLost) || !errors.Is(err, taskErr) || !errors.Is(err, ErrConflict) {
			t.Errorf("Hold = %v, want the task's error joined with ErrReservationLost", err)
		}
	})
}

func TestHoldHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeReservations{holder: "other", token: 7, expires: time.Now().Add(time.Minute)}
		c := newFakeClient(t, f)
		ran := false
		err := c.Hold(t.Context(), "n", 10*time.Second, func(context.Context) error { ran = true; return nil })
		var he *ReservationHeldError
		if !errors.As(err, &he) || he.Holder != "other" || !he.ExpiresAt.Equal(f.expires) || !errors.Is(err, ErrConflict) || ran {
			t.Errorf("Hold of a held name = %v (ran %t), want a ReservationHeldError naming other", err, ran)
		}
	})
}

func TestSingletonTakesOverAfterExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &fakeReservations{holder: "crashed", token: 1, expires: time.Now().Add(5 * time.Second)}
		c := newFakeClient(t, f)
		ctx, cancel := context.WithCancel(t.Context())
		start := time.Now()
		started := make(chan time.Duration, 1)
		s := &Singleton{Client: c, Name: "n", TTL: 3 * time.Second, Holder: "me", Task: func(ctx context.Context) error {
			started <- time.Since(start)
			<-ctx.Done()
			return nil
		}}
		done := make(chan error)
		go func() { done <- s.Run(ctx) }()
		// Tries every TTL/3 = 1s: the first at 5 s (the expiry) succeeds.
		if d := <-started; d != 5*time.Second {
			t.Errorf("took over after %v, want 5s", d)
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
		if f.holder != "" || f.releases != 1 {
			t.Errorf("after Run: holder %q, %d releases; want released", f.holder, f.releases)
		}
	})
}

func TestSingletonRefusedCredential(t *testing.T) {
	c, _ := newTestClient(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, 403, `{"title":"Forbidden","status":403}`)
	}))
	s := &Singleton{Client: c, Name: "n", Task: func(context.Context) error { return nil }}
	if err := s.Run(t.Context()); !errors.Is(err, ErrForbidden) {
		t.Errorf("Run = %v, want ErrForbidden", err)
	}
	if err := (&Singleton{Client: c}).Run(t.Context()); err == nil {
		t.Error("Run of a Singleton without Name and Task succeeded")
	}
}
