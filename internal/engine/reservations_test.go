package engine_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/engine"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func TestReservationArgumentsChecked(t *testing.T) {
	run(t, engine.Config{}, func(t *testing.T, v *env) {
		ctx := t.Context()
		tests := []struct {
			name                string
			tenant, res, holder string
			ttl                 time.Duration
			field               string
		}{
			{"no tenant (the engine's namespace)", "", "n", "h", time.Minute, "tenant"},
			{"bad tenant", "a b", "n", "h", time.Minute, "tenant"},
			{"empty name", "acme", "", "h", time.Minute, "name"},
			{"bad name", "acme", "a/b", "h", time.Minute, "name"},
			{"long name", "acme", strings.Repeat("n", 129), "h", time.Minute, "name"},
			{"reserved name", "acme", "gantry:maintenance", "h", time.Minute, "name"},
			{"no holder", "acme", "n", "", time.Minute, "holder"},
			{"long holder", "acme", "n", strings.Repeat("h", 257), time.Minute, "holder"},
			{"control in holder", "acme", "n", "h\n", time.Minute, "holder"},
			{"bad UTF-8 holder", "acme", "n", "h\xff", time.Minute, "holder"},
			{"TTL too short", "acme", "n", "h", 999 * time.Millisecond, "ttl_seconds"},
			{"TTL too long", "acme", "n", "h", 24*time.Hour + time.Second, "ttl_seconds"},
		}
		for _, tt := range tests {
			_, err := v.e.AcquireReservation(ctx, tt.tenant, tt.res, tt.holder, tt.ttl)
			var fe *job.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field {
				t.Errorf("%s: AcquireReservation(%q, %q, %q, %v) = %v, want a field error naming %s", tt.name, tt.tenant, tt.res, tt.holder, tt.ttl, err, tt.field)
			}
		}
		r, err := v.e.AcquireReservation(ctx, "acme", "n", "h", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range []error{
			func() error { _, err := v.e.RenewReservation(ctx, "acme", "n", "h", 0, time.Minute); return err }(),
			v.e.ReleaseReservation(ctx, "acme", "n", "h", -1),
		} {
			var fe *job.FieldError
			if !errors.As(err, &fe) || fe.Field != "token" {
				t.Errorf("renew or release with a token < 1 = %v, want a field error naming token", err)
			}
		}
		if _, err := v.e.GetReservation(ctx, "", engine.LeaderReservation); err == nil {
			t.Errorf("GetReservation of the engine's own reservation succeeded")
		}
		if got, err := v.e.GetReservation(ctx, "acme", "n"); err != nil || got.Token != r.Token {
			t.Errorf("GetReservation = %+v, %v; want token %d", got, err, r.Token)
		}
	})
}

func TestReservationLifecycle(t *testing.T) {
	run(t, engine.Config{}, func(t *testing.T, v *env) {
		ctx := t.Context()
		r, err := v.e.AcquireReservation(ctx, "acme", "n", "a", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.e.AcquireReservation(ctx, "acme", "n", "b", 10*time.Second)
		var he *store.HeldError
		if !errors.As(err, &he) || he.Holder != "a" || !errors.Is(err, store.ErrConflict) {
			t.Fatalf("AcquireReservation by b = %v, want a HeldError naming a", err)
		}
		// Names are per tenant.
		if _, err := v.e.AcquireReservation(ctx, "globex", "n", "b", 10*time.Second); err != nil {
			t.Fatalf("globex's n: %v", err)
		}
		time.Sleep(5 * time.Second)
		if _, err := v.e.RenewReservation(ctx, "acme", "n", "a", r.Token, 10*time.Second); err != nil {
			t.Fatalf("RenewReservation: %v", err)
		}
		time.Sleep(9 * time.Second) // 14 s after acquiring: alive thanks to the renewal
		if _, err := v.e.AcquireReservation(ctx, "acme", "n", "b", 10*time.Second); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("AcquireReservation by b after the renewal = %v, want ErrConflict", err)
		}
		time.Sleep(time.Second) // expired by the engine's clock
		r2, err := v.e.AcquireReservation(ctx, "acme", "n", "b", 10*time.Second)
		if err != nil || r2.Token <= r.Token {
			t.Fatalf("AcquireReservation by b after expiry = %+v, %v; want a greater token than %d", r2, err, r.Token)
		}
		if _, err := v.e.RenewReservation(ctx, "acme", "n", "a", r.Token, 10*time.Second); !errors.Is(err, store.ErrConflict) {
			t.Errorf("a's late renewal = %v, want ErrConflict", err)
		}
		if err := v.e.ReleaseReservation(ctx, "acme", "n", "b", r2.Token); err != nil {
			t.Fatalf("ReleaseReservation: %v", err)
		}
		got, err := v.e.GetReservation(ctx, "acme", "n")
		if err != nil {
			t.Fatal(err)
		}
		var ended []string
		for _, h := range got.History {
			ended = append(ended, fmt.Sprintf("%s:%s", h.Holder, h.Ended))
		}
		if got.Holder != "" || strings.Join(ended, " ") != "b:released a:expired" {
			t.Errorf("GetReservation = holder %q, history %v; want free, b:released a:expired", got.Holder, ended)
		}
	})
}

func TestListReservations(t *testing.T) {
	run(t, engine.Config{}, func(t *testing.T, v *env) {
		ctx := t.Context()
		// Let the engine elect itself: its reservation is in tenant "".
		for !v.e.IsLeader() {
			time.Sleep(100 * time.Millisecond)
		}
		want := []string{"acme/a", "acme/b", "acme/c", "globex/a", "globex/z"}
		for _, k := range want {
			tenant, name, _ := strings.Cut(k, "/")
			if _, err := v.e.AcquireReservation(ctx, tenant, name, "h", time.Minute); err != nil {
				t.Fatal(err)
			}
		}
		list := func(tenant string, limit int) []string {
			var got []string
			cursor := ""
			for range 10 {
				rs, next, err := v.e.ListReservations(ctx, engine.ReservationListParams{Tenant: tenant, Limit: limit, Cursor: cursor})
				if err != nil {
					t.Fatalf("ListReservations: %v", err)
				}
				if len(rs) > limit {
					t.Errorf("page of %d, want at most %d", len(rs), limit)
				}
				for _, r := range rs {
					got = append(got, r.Tenant+"/"+r.Name)
				}
				if next == "" {
					return got
				}
				cursor = next
			}
			t.Fatal("too many pages")
			return nil
		}
		for _, limit := range []int{1, 2, 5, 100} {
			if got := list("", limit); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("ListReservations(all, limit %d) = %v, want %v (never the engine's own)", limit, got, want)
			}
		}
		if got := list("globex", 1); strings.Join(got, " ") != "globex/a globex/z" {
			t.Errorf("ListReservations(globex) = %v", got)
		}
		if _, _, err := v.e.ListReservations(ctx, engine.ReservationListParams{Cursor: "!!"}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("ListReservations(bad cursor) = %v, want ErrInvalidCursor", err)
		}
	})
}
