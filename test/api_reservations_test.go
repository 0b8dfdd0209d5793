package test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gantryhq/gantry/internal/server"
)

// apiGrant is the answer to acquire and renew.
type apiGrant struct {
	Name       string  `json:"name"`
	Tenant     string  `json:"tenant"`
	Holder     string  `json:"holder"`
	Token      int64   `json:"token"`
	AcquiredAt string  `json:"acquired_at"`
	ExpiresAt  string  `json:"expires_at"`
	TTLSeconds float64 `json:"ttl_seconds"`
}

// apiReservation is the reservation object of GET.
type apiReservation struct {
	Name      string  `json:"name"`
	Tenant    string  `json:"tenant"`
	Holder    *string `json:"holder"`
	Token     *int64  `json:"token"`
	ExpiresAt *string `json:"expires_at"`
	History   []struct {
		Holder     string  `json:"holder"`
		Token      int64   `json:"token"`
		AcquiredAt string  `json:"acquired_at"`
		EndedAt    *string `json:"ended_at"`
		Ended      string  `json:"ended"`
	} `json:"history"`
}

// apiHeldProblem is the 409 of a held reservation.
type apiHeldProblem struct {
	Type      string `json:"type"`
	Holder    string `json:"holder"`
	ExpiresAt string `json:"expires_at"`
}

func TestReservationsAPISQLite(t *testing.T) {
	testReservationsAPI(t, apiStart(t, server.Config{}))
}

func TestReservationsAPIPostgres(t *testing.T) {
	dbURL := pgNeed(t)
	testReservationsAPI(t, apiStart(t, server.Config{DatabaseURL: dbURL, Schema: pgSchema(t, dbURL)}))
}

func testReservationsAPI(t *testing.T, s *apiServer) {
	acquire := func(name, holder string, ttl float64) apiResp {
		return s.req("POST", "/v1/reservations/"+name+"/acquire", map[string]any{"holder": holder, "ttl_seconds": ttl})
	}
	parse := func(ts string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("time %q: %v", ts, err)
		}
		return v
	}

	t.Run("AcquireHeldRenewRelease", func(t *testing.T) {
		var g1 apiGrant
		acquire("nightly", "a", 60).want(t, http.StatusOK, &g1)
		if g1.Name != "nightly" || g1.Holder != "a" || g1.Token <= 0 || g1.Tenant != "default" || g1.TTLSeconds != 60 || g1.ExpiresAt == "" {
			t.Fatalf("grant = %+v", g1)
		}
		// The same holder extends it and keeps its token.
		var g1b apiGrant
		acquire("nightly", "a", 120).want(t, http.StatusOK, &g1b)
		if g1b.Token != g1.Token || !parse(g1b.ExpiresAt).After(parse(g1.ExpiresAt)) {
			t.Errorf("re-acquire = %+v, want token %d and a later expiry than %s", g1b, g1.Token, g1.ExpiresAt)
		}
		// Another holder gets 409 naming the holder and the expiry.
		r := acquire("nightly", "b", 60)
		r.problem(t, http.StatusConflict, "")
		var hp apiHeldProblem
		if err := json.Unmarshal(r.Body, &hp); err != nil {
			t.Fatal(err)
		}
		if hp.Holder != "a" || hp.ExpiresAt != g1b.ExpiresAt || hp.Type != "urn:gantry:problem:reservation-held" {
			t.Errorf("409 = %s, want holder a until %s", r.Body, g1b.ExpiresAt)
		}
		// Renew.
		var g1c apiGrant
		s.req("POST", "/v1/reservations/nightly/renew", map[string]any{"holder": "a", "token": g1.Token, "ttl_seconds": 30}).want(t, http.StatusOK, &g1c)
		if g1c.Token != g1.Token || g1c.TTLSeconds != 30 {
			t.Errorf("renew = %+v", g1c)
		}
		// Wrong token or holder: 409, nothing changes.
		s.req("POST", "/v1/reservations/nightly/renew", map[string]any{"holder": "a", "token": g1.Token + 1000, "ttl_seconds": 30}).problem(t, http.StatusConflict, "")
		s.req("POST", "/v1/reservations/nightly/release", map[string]any{"holder": "b", "token": g1.Token}).problem(t, http.StatusConflict, "")
		// Release: 204, then 409 again; the name is free for b with a
		// greater token.
		r = s.req("POST", "/v1/reservations/nightly/release", map[string]any{"holder": "a", "token": g1.Token})
		if r.Status != http.StatusNoContent || len(r.Body) != 0 {
			t.Fatalf("release = %d %s, want 204", r.Status, r.Body)
		}
		s.req("POST", "/v1/reservations/nightly/release", map[string]any{"holder": "a", "token": g1.Token}).problem(t, http.StatusConflict, "")
		s.req("POST", "/v1/reservations/nightly/renew", map[string]any{"holder": "a", "token": g1.Token, "ttl_seconds": 30}).problem(t, http.StatusConflict, "")
		var g2 apiGrant
		acquire("nightly", "b", 60).want(t, http.StatusOK, &g2)
		if g2.Token <= g1.Token {
			t.Errorf("b's token %d, want > %d", g2.Token, g1.Token)
		}
		// a's late renewal is refused and names the new holder.
		r = s.req("POST", "/v1/reservations/nightly/renew", map[string]any{"holder": "a", "token": g1.Token, "ttl_seconds": 30})
		r.problem(t, http.StatusConflict, "")
		if err := json.Unmarshal(r.Body, &hp); err != nil || hp.Holder != "b" || hp.Type != "urn:gantry:problem:reservation-lost" {
			t.Errorf("late renewal's 409 = %s, want reservation-lost naming b", r.Body)
		}
		var got apiReservation
		s.req("GET", "/v1/reservations/nightly", nil).want(t, http.StatusOK, &got)
		if got.Holder == nil || *got.Holder != "b" || got.Token == nil || *got.Token != g2.Token {
			t.Errorf("GET = %+v, want held by b", got)
		}
		if len(got.History) != 2 || got.History[0].Ended != "held" || got.History[0].EndedAt != nil ||
			got.History[1].Holder != "a" || got.History[1].Ended != "released" || got.History[1].EndedAt == nil {
			t.Errorf("history = %+v, want b held, a released", got.History)
		}
	})

	t.Run("Expiry", func(t *testing.T) {
		var g apiGrant
		acquire("short", "a", 1).want(t, http.StatusOK, &g)
		var got apiReservation
		apiEventually(t, "the reservation to expire", func() bool {
			s.req("GET", "/v1/reservations/short", nil).want(t, http.StatusOK, &got)
			return got.Holder == nil
		})
		if got.Token != nil || got.ExpiresAt != nil || len(got.History) != 1 || got.History[0].Ended != "expired" || got.History[0].EndedAt == nil {
			t.Errorf("expired reservation = %s", mustJSON(got))
		}
		s.req("POST", "/v1/reservations/short/renew", map[string]any{"holder": "a", "token": g.Token, "ttl_seconds": 30}).problem(t, http.StatusConflict, "")
		var g2 apiGrant
		acquire("short", "a", 60).want(t, http.StatusOK, &g2)
		if g2.Token <= g.Token {
			t.Errorf("token after expiry %d, want > %d (a new grant, even for the same holder)", g2.Token, g.Token)
		}
	})

	t.Run("HistoryKeepsTen", func(t *testing.T) {
		var last int64
		for i := range 12 {
			var g apiGrant
			acquire("busy", "h", 60).want(t, http.StatusOK, &g)
			if g.Token <= last {
				t.Fatalf("grant %d: token %d, want > %d", i, g.Token, last)
			}
			last = g.Token
			s.req("POST", "/v1/reservations/busy/release", map[string]any{"holder": "h", "token": g.Token}).want(t, http.StatusNoContent, nil)
		}
		var got apiReservation
		s.req("GET", "/v1/reservations/busy", nil).want(t, http.StatusOK, &got)
		if len(got.History) != 10 || got.History[0].Token != last || got.Holder != nil {
			t.Errorf("history of %d entries, newest token %d, holder %v; want 10, %d, null", len(got.History), got.History[0].Token, got.Holder, last)
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		tests := []struct {
			path  string
			body  any
			field string
		}{
			{"/v1/reservations/a%20b/acquire", map[string]any{"holder": "h", "ttl_seconds": 10}, "name"},
			{"/v1/reservations/" + strings.Repeat("n", 129) + "/acquire", map[string]any{"holder": "h", "ttl_seconds": 10}, "name"},
			{"/v1/reservations/gantry:mine/acquire", map[string]any{"holder": "h", "ttl_seconds": 10}, "name"},
			{"/v1/reservations/n/acquire", map[string]any{"ttl_seconds": 10}, "holder"},
			{"/v1/reservations/n/acquire", map[string]any{"holder": "", "ttl_seconds": 10}, "holder"},
			{"/v1/reservations/n/acquire", map[string]any{"holder": strings.Repeat("h", 257), "ttl_seconds": 10}, "holder"},
			{"/v1/reservations/n/acquire", map[string]any{"holder": "h\u0007", "ttl_seconds": 10}, "holder"},
			{"/v1/reservations/n/acquire", map[string]any{"holder": "h"}, "ttl_seconds"},
			{"/v1/reservations/n/acquire", map[string]any{"holder": "h", "ttl_seconds": 0.5}, "ttl_seconds"},
			{"/v1/reservations/n/acquire", map[string]any{"holder": "h", "ttl_seconds": 86401}, "ttl_seconds"},
			{"/v1/reservations/n/acquire", map[string]any{"holder": "h", "ttl_seconds": "10"}, "ttl_seconds"},
			{"/v1/reservations/n/acquire", map[string]any{"holder": 7, "ttl_seconds": 10}, "holder"},
			{"/v1/reservations/n/acquire", map[string]any{"holder": "h", "ttl_seconds": 10, "token": 1}, "token"},
			{"/v1/reservations/n/acquire", `{"holder":"h",`, "body"},
			{"/v1/reservations/n/acquire?tenant=a%20b", map[string]any{"holder": "h", "ttl_seconds": 10}, "tenant"},
			{"/v1/reservations/n/renew", map[string]any{"holder": "h", "ttl_seconds": 10}, "token"},
			{"/v1/reservations/n/renew", map[string]any{"holder": "h", "token": 1}, "ttl_seconds"},
			{"/v1/reservations/n/renew", map[string]any{"holder": "h", "token": "1", "ttl_seconds": 10}, "token"},
			{"/v1/reservations/n/release", map[string]any{"holder": "h"}, "token"},
			{"/v1/reservations/n/release", map[string]any{"token": 1}, "holder"},
			{"/v1/reservations/n/release", map[string]any{"holder": "h", "token": 1, "ttl_seconds": 3}, "ttl_seconds"},
		}
		for _, tt := range tests {
			r := s.req("POST", tt.path, tt.body)
			if r.Status != http.StatusBadRequest {
				t.Errorf("POST %s %v = %d %s, want 400 naming %s", tt.path, tt.body, r.Status, r.Body, tt.field)
				continue
			}
			if p := r.problem(t, http.StatusBadRequest, tt.field); !strings.Contains(p.Detail, tt.field) {
				t.Errorf("POST %s %v: detail %q does not name %s", tt.path, tt.body, p.Detail, tt.field)
			}
		}
		// Bad input changed nothing.
		s.req("GET", "/v1/reservations/n", nil).problem(t, http.StatusNotFound, "")
		s.req("GET", "/v1/reservations/a%20b", nil).problem(t, http.StatusBadRequest, "name")
		s.req("GET", "/v1/reservations?limit=0", nil).problem(t, http.StatusBadRequest, "limit")
		s.req("GET", "/v1/reservations?cursor=zz", nil).problem(t, http.StatusBadRequest, "cursor")
		s.req("DELETE", "/v1/reservations/n", nil).problem(t, http.StatusMethodNotAllowed, "")
	})

	t.Run("TenantsAndList", func(t *testing.T) {
		var ga, gb apiGrant
		s.req("POST", "/v1/reservations/shared/acquire?tenant=acme", map[string]any{"holder": "a", "ttl_seconds": 60}).want(t, http.StatusOK, &ga)
		s.req("POST", "/v1/reservations/shared/acquire", map[string]any{"holder": "b", "ttl_seconds": 60, "tenant": "globex"}).want(t, http.StatusOK, &gb)
		if ga.Tenant != "acme" || gb.Tenant != "globex" || gb.Token <= ga.Token {
			t.Errorf("grants = %+v, %+v; want one per tenant, tokens increasing", ga, gb)
		}
		// Another tenant's name is not found; its grant cannot be used.
		s.req("GET", "/v1/reservations/shared", nil).problem(t, http.StatusNotFound, "")
		s.req("POST", "/v1/reservations/shared/release?tenant=globex", map[string]any{"holder": "a", "token": ga.Token}).problem(t, http.StatusConflict, "")
		var got apiReservation
		s.req("GET", "/v1/reservations/shared?tenant=acme", nil).want(t, http.StatusOK, &got)
		if got.Holder == nil || *got.Holder != "a" {
			t.Errorf("acme's shared = %s, want a's", mustJSON(got))
		}
		// The engine's own reservation is neither listed nor reachable.
		s.req("GET", "/v1/reservations/gantry:maintenance", nil).problem(t, http.StatusBadRequest, "name")
		s.req("POST", "/v1/reservations/gantry:maintenance/acquire", map[string]any{"holder": "x", "ttl_seconds": 60}).problem(t, http.StatusBadRequest, "name")

		var all []apiReservation
		cursor := ""
		for range 20 {
			var page apiPage[apiReservation]
			path := "/v1/reservations?limit=2"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			s.req("GET", path, nil).want(t, http.StatusOK, &page)
			if len(page.Items) > 2 {
				t.Fatalf("page of %d items with limit 2", len(page.Items))
			}
			all = append(all, page.Items...)
			if page.NextCursor == nil {
				break
			}
			cursor = *page.NextCursor
		}
		var keys []string
		for _, r := range all {
			keys = append(keys, r.Tenant+"/"+r.Name)
			if r.History != nil {
				t.Errorf("listed %s/%s with history", r.Tenant, r.Name)
			}
		}
		want := "acme/shared default/busy default/nightly default/short globex/shared"
		if strings.Join(keys, " ") != want {
			t.Errorf("list = %v, want %s", keys, want)
		}
		var page apiPage[apiReservation]
		s.req("GET", "/v1/reservations?tenant=globex", nil).want(t, http.StatusOK, &page)
		if len(page.Items) != 1 || page.Items[0].Tenant != "globex" || page.NextCursor != nil {
			t.Errorf("globex's list = %s", mustJSON(page))
		}
	})
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
