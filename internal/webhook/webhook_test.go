package webhook_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/webhook"
	"github.com/gantryhq/gantry/internal/wire"
)

func TestDeliveryInOrderSigned(t *testing.T) {
	e := newEnv(t)
	before := e.submit("acme", "") // before the webhook: not delivered
	s, _ := e.start(opts(t))
	r := newReceiver(t)
	w := e.create(s, "acme", r.URL(), nil, "")
	if w.Cursor != e.lastSeq() {
		t.Fatalf("Create: Cursor = %d, want the newest seq %d", w.Cursor, e.lastSeq())
	}

	var want []string
	for range 5 {
		j := e.submit("acme", "")
		want = append(want, job.EventSubmitted+" "+j.ID)
	}
	e.submit("globex", "") // another tenant: not delivered
	e.cancel(before.ID)
	want = append(want, job.EventCanceled+" "+before.ID)
	last := e.lastSeq()
	got := e.waitCursor(w.ID, last)

	evs := r.events()
	if diff := cmp.Diff(want, summary(evs)); diff != "" {
		t.Errorf("delivered events mismatch (-want +got):\n%s", diff)
	}
	// Bodies are the wire form of the stored events.
	var wantBodies, gotBodies []string
	for _, ev := range e.events(w.Cursor) {
		if ev.Tenant == "acme" {
			b, err := json.Marshal(wire.FromEvent(&ev))
			if err != nil {
				t.Fatal(err)
			}
			wantBodies = append(wantBodies, string(b))
		}
	}
	for _, d := range r.deliveries() {
		gotBodies = append(gotBodies, string(d.Body))
	}
	if diff := cmp.Diff(wantBodies, gotBodies); diff != "" {
		t.Errorf("delivered bodies mismatch (-want +got):\n%s", diff)
	}
	for i, d := range r.deliveries() {
		ev := evs[i]
		checks := []struct{ header, got, want string }{
			{"Content-Type", d.Header.Get("Content-Type"), "application/json"},
			{webhook.HeaderEvent, d.Header.Get(webhook.HeaderEvent), ev.Kind},
			{webhook.HeaderDelivery, d.Header.Get(webhook.HeaderDelivery), fmt.Sprintf("%s:%d", w.ID, ev.Seq)},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("delivery %d: header %s = %q, want %q", i, c.header, c.got, c.want)
			}
		}
		sig := d.Header.Get(webhook.HeaderSignature)
		if err := webhook.Verify(w.Secret, sig, d.Body, time.Minute); err != nil {
			t.Errorf("delivery %d: Verify(%q) = %v, want nil", i, sig, err)
		}
		if err := webhook.Verify("wrong secret", sig, d.Body, time.Minute); !errors.Is(err, webhook.ErrSignature) {
			t.Errorf("delivery %d: Verify(wrong secret) = %v, want ErrSignature", i, err)
		}
	}
	if got.LastDeliveredAt.IsZero() || got.Failures != 0 || got.LastError != "" {
		t.Errorf("status = delivered at %v, %d failures, error %q; want a delivery time, no failure", got.LastDeliveredAt, got.Failures, got.LastError)
	}
}

func TestFilters(t *testing.T) {
	e := newEnv(t)
	s, _ := e.start(opts(t))
	batch, _ := e.newBatch("acme") // before the webhooks: not delivered

	hooks := []struct {
		name    string
		tenant  string
		kinds   []string
		batchID string
		r       *receiver
		w       *job.Webhook
		want    []string
	}{
		{name: "tenant", tenant: "acme"},
		{name: "kind", tenant: "acme", kinds: []string{job.EventCanceled}},
		{name: "kinds", tenant: "acme", kinds: []string{job.EventCanceled, job.EventSubmitted}},
		{name: "batch", tenant: "acme", batchID: batch.ID},
		{name: "batch and kind", tenant: "acme", kinds: []string{job.EventCanceled}, batchID: batch.ID},
		{name: "other tenant", tenant: "globex", kinds: []string{job.EventSubmitted}},
		{name: "every tenant", tenant: ""},
	}
	for i := range hooks {
		h := &hooks[i]
		h.r = newReceiver(t)
		h.w = e.create(s, h.tenant, h.r.URL(), h.kinds, h.batchID)
	}

	a1 := e.record("acme", batch.ID)
	if _, err := e.st.InsertJobs(t.Context(), &store.InsertJobsParams{Now: time.Now(), Jobs: []*job.Job{a1}, AddToBatch: batch.ID}); err != nil {
		t.Fatalf("InsertJobs(add to batch): %v", err)
	}
	a2 := e.submit("acme", "")
	g1 := e.submit("globex", "")
	e.cancel(a2.ID)
	e.cancel(a1.ID)
	var (
		a1sub = job.EventSubmitted + " " + a1.ID
		a2sub = job.EventSubmitted + " " + a2.ID
		g1sub = job.EventSubmitted + " " + g1.ID
		a2can = job.EventCanceled + " " + a2.ID
		a1can = job.EventCanceled + " " + a1.ID
	)
	want := map[string][]string{
		"tenant":         {a1sub, a2sub, a2can, a1can},
		"kind":           {a2can, a1can},
		"kinds":          {a1sub, a2sub, a2can, a1can},
		"batch":          {a1sub, a1can},
		"batch and kind": {a1can},
		"other tenant":   {g1sub},
		"every tenant":   {a1sub, a2sub, g1sub, a2can, a1can},
	}
	last := e.lastSeq()
	for _, h := range hooks {
		e.waitCursor(h.w.ID, last)
		if diff := cmp.Diff(want[h.name], summary(h.r.events())); diff != "" {
			t.Errorf("webhook %q: delivered events mismatch (-want +got):\n%s", h.name, diff)
		}
	}
}

func TestRetryAfterFailure(t *testing.T) {
	e := newEnv(t)
	s, _ := e.start(opts(t))
	r := newReceiver(t)
	failing := make(chan struct{})
	r.answer(func(int) int {
		select {
		case <-failing:
			return http.StatusOK
		default:
			return http.StatusInternalServerError
		}
	})
	w := e.create(s, "acme", r.URL(), nil, "")
	j1 := e.submit("acme", "")
	j2 := e.submit("acme", "")

	// The endpoint fails: the first event is retried, the failures are
	// recorded, and the second event waits its turn.
	failed := e.waitWebhook(w.ID, "recorded 3 failures", func(w *job.Webhook) bool { return w.Failures >= 3 })
	if !strings.Contains(failed.LastError, "HTTP 500") {
		t.Errorf("LastError = %q, want it to mention HTTP 500", failed.LastError)
	}
	close(failing)
	got := e.waitCursor(w.ID, e.lastSeq())
	// The last error stays visible; Failures says delivery works again.
	if got.Failures != 0 || !strings.Contains(got.LastError, "HTTP 500") || got.LastDeliveredAt.IsZero() {
		t.Errorf("after success: %d failures, error %q, delivered at %v; want 0, the last error, a time", got.Failures, got.LastError, got.LastDeliveredAt)
	}

	ds := r.deliveries()
	evs := r.events()
	first := fmt.Sprintf("%s:%d", w.ID, evs[0].Seq)
	n := 0
	for n < len(ds) && ds[n].Header.Get(webhook.HeaderDelivery) == first {
		n++
	}
	if n < 4 {
		t.Errorf("first event delivered %d times, want at least 4 (3 failures, then success)", n)
	}
	var tail []string
	for _, ev := range evs[n-1:] {
		tail = append(tail, ev.Kind+" "+ev.JobID)
	}
	wantTail := []string{job.EventSubmitted + " " + j1.ID, job.EventSubmitted + " " + j2.ID}
	if diff := cmp.Diff(wantTail, tail); diff != "" {
		t.Errorf("events after the retries mismatch (-want +got):\n%s", diff)
	}
	// Every attempt is signed afresh, with the same delivery ID.
	for i, d := range ds {
		if err := webhook.Verify(w.Secret, d.Header.Get(webhook.HeaderSignature), d.Body, time.Minute); err != nil {
			t.Errorf("attempt %d: Verify = %v", i, err)
		}
	}
}

func TestGiveUp(t *testing.T) {
	e := newEnv(t)
	o := opts(t)
	o.MaxAttempts = 3
	s, _ := e.start(o)
	r := newReceiver(t)
	r.answer(func(n int) int {
		if n <= 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	w := e.create(s, "acme", r.URL(), nil, "")
	lost := e.submit("acme", "")
	kept := e.submit("acme", "")
	got := e.waitCursor(w.ID, e.lastSeq())
	want := []string{
		job.EventSubmitted + " " + lost.ID, job.EventSubmitted + " " + lost.ID, job.EventSubmitted + " " + lost.ID,
		job.EventSubmitted + " " + kept.ID,
	}
	if diff := cmp.Diff(want, summary(r.events())); diff != "" {
		t.Errorf("deliveries mismatch (-want +got):\n%s", diff)
	}
	if got.Failures != 0 || !strings.Contains(got.LastError, "gave up on event") || !strings.Contains(got.LastError, "HTTP 503") {
		t.Errorf("status = %d failures, error %q; want 0 failures after a success, and the given-up event named", got.Failures, got.LastError)
	}
}

func TestPrivateTargets(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("AllowPrivate=%v", allow), func(t *testing.T) {
			e := newEnv(t)
			o := opts(t)
			o.AllowPrivate = allow
			o.MaxAttempts = 2
			r := newReceiver(t)
			port := r.srv.Listener.Addr().(*net.TCPAddr).Port
			// Stored directly (Create refuses these without AllowPrivate),
			// so the dialer is the check under test. localhost resolves
			// to loopback: the check applies after name resolution.
			var hooks []*job.Webhook
			for _, u := range []string{r.URL(), fmt.Sprintf("http://localhost:%d/hook", port)} {
				w := &job.Webhook{ID: job.NewID(time.Now()), Tenant: "acme", URL: u, Secret: "s", CreatedAt: time.Now(), Cursor: e.lastSeq()}
				if err := e.st.InsertWebhook(t.Context(), w); err != nil {
					t.Fatalf("InsertWebhook: %v", err)
				}
				hooks = append(hooks, w)
			}
			e.start(o)
			e.submit("acme", "")
			last := e.lastSeq()
			for _, w := range hooks {
				got := e.waitCursor(w.ID, last)
				if allow {
					if got.LastError != "" || got.LastDeliveredAt.IsZero() {
						t.Errorf("webhook %s: error %q, delivered at %v; want delivered", w.URL, got.LastError, got.LastDeliveredAt)
					}
					continue
				}
				if !strings.Contains(got.LastError, "gave up") || !strings.Contains(got.LastError, "internal address refused") || !strings.Contains(got.LastError, "loopback") {
					t.Errorf("webhook %s: LastError = %q, want it to say it gave up on a loopback address", w.URL, got.LastError)
				}
			}
			wantN := 0
			if allow {
				wantN = 2
			}
			if n := len(r.deliveries()); n != wantN {
				t.Errorf("receiver got %d requests, want %d", n, wantN)
			}
		})
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	e := newEnv(t)
	o := opts(t)
	o.MaxAttempts = 2
	s, _ := e.start(o)
	target := newReceiver(t)
	r := newReceiver(t)
	r.respondWith(func(_ int, w http.ResponseWriter) {
		w.Header().Set("Location", target.URL())
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	w := e.create(s, "acme", r.URL(), nil, "")
	e.submit("acme", "")
	got := e.waitCursor(w.ID, e.lastSeq())
	if n := len(r.deliveries()); n != 2 {
		t.Errorf("redirecting endpoint got %d requests, want 2 (MaxAttempts)", n)
	}
	if n := len(target.deliveries()); n != 0 {
		t.Errorf("redirect target got %d requests, want 0", n)
	}
	if !strings.Contains(got.LastError, "redirect") || !strings.Contains(got.LastError, "307") {
		t.Errorf("LastError = %q, want it to name the redirect", got.LastError)
	}
}

func TestResumeAfterRestart(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	s1, stop1 := e.start(opts(t))
	w := e.create(s1, "acme", r.URL(), nil, "")
	var want []string
	for range 3 {
		want = append(want, job.EventSubmitted+" "+e.submit("acme", "").ID)
	}
	e.waitCursor(w.ID, e.lastSeq())
	stop1()

	// Events stored while no service runs are delivered by the next one,
	// from the saved cursor: none of the earlier ones again.
	for range 3 {
		want = append(want, job.EventSubmitted+" "+e.submit("acme", "").ID)
	}
	e.start(opts(t))
	e.waitCursor(w.ID, e.lastSeq())
	if diff := cmp.Diff(want, summary(r.events())); diff != "" {
		t.Errorf("deliveries across the restart mismatch (-want +got):\n%s", diff)
	}
}

func TestEventsLostToRetention(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t)
	s1, stop1 := e.start(opts(t))
	w := e.create(s1, "acme", r.URL(), nil, "")
	stop1()
	e.submit("acme", "")
	e.submit("acme", "")
	if _, err := e.st.Retain(t.Context(), &store.RetainParams{EventsBefore: time.Now().Add(time.Hour), Limit: 1000}); err != nil {
		t.Fatalf("Retain: %v", err)
	}
	j := e.submit("acme", "")
	e.start(opts(t))
	got := e.waitCursor(w.ID, e.lastSeq())
	if diff := cmp.Diff([]string{job.EventSubmitted + " " + j.ID}, summary(r.events())); diff != "" {
		t.Errorf("deliveries mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(got.LastError, "removed by retention") {
		t.Errorf("LastError = %q, want it to say events were removed by retention", got.LastError)
	}
}

func TestDeleteStopsDelivery(t *testing.T) {
	e := newEnv(t)
	s, _ := e.start(opts(t))
	r := newReceiver(t)
	w := e.create(s, "acme", r.URL(), nil, "")
	first := e.submit("acme", "")
	e.waitCursor(w.ID, e.lastSeq())
	if err := s.Delete(t.Context(), "globex", w.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete(other tenant) = %v, want ErrNotFound", err)
	}
	if err := s.Delete(t.Context(), "acme", w.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Get(t.Context(), "acme", w.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get(deleted) = %v, want ErrNotFound", err)
	}
	// A webhook created after the delete sees the next events: once it
	// has handled them, the deleted one would have too.
	r2 := newReceiver(t)
	w2 := e.create(s, "acme", r2.URL(), nil, "")
	second := e.submit("acme", "")
	e.waitCursor(w2.ID, e.lastSeq())
	if diff := cmp.Diff([]string{job.EventSubmitted + " " + first.ID}, summary(r.events())); diff != "" {
		t.Errorf("deleted webhook's deliveries mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{job.EventSubmitted + " " + second.ID}, summary(r2.events())); diff != "" {
		t.Errorf("new webhook's deliveries mismatch (-want +got):\n%s", diff)
	}
}

func TestSlowEndpointDelaysNoOther(t *testing.T) {
	e := newEnv(t)
	s, _ := e.start(opts(t))
	slow := newReceiver(t)
	release := make(chan struct{})
	slow.answer(func(int) int {
		<-release
		return http.StatusOK
	})
	defer close(release)
	fast := newReceiver(t)
	e.create(s, "acme", slow.URL(), nil, "")
	wf := e.create(s, "acme", fast.URL(), nil, "")
	var want []string
	for range 3 {
		want = append(want, job.EventSubmitted+" "+e.submit("acme", "").ID)
	}
	// The slow endpoint holds its first delivery until the test ends.
	e.waitCursor(wf.ID, e.lastSeq())
	if diff := cmp.Diff(want, summary(fast.events())); diff != "" {
		t.Errorf("fast webhook's deliveries mismatch (-want +got):\n%s", diff)
	}
}

func TestCreate(t *testing.T) {
	e := newEnv(t)
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	o := opts(t)
	o.AllowPrivate = false
	o.Clock = func() time.Time { return now }
	s := webhook.New(e.st, e.hub, o)
	batch, _ := e.newBatch("acme")
	otherBatch, _ := e.newBatch("globex")

	badField := []struct {
		name    string
		tenant  string
		url     string
		kinds   []string
		batchID string
		field   string
	}{
		{"no url", "acme", "", nil, "", "url"},
		{"relative url", "acme", "/hooks", nil, "", "url"},
		{"no scheme", "acme", "hooks.example.com/x", nil, "", "url"},
		{"ftp", "acme", "ftp://hooks.example.com/x", nil, "", "url"},
		{"javascript", "acme", "javascript:alert(1)", nil, "", "url"},
		{"opaque", "acme", "https:hooks.example.com", nil, "", "url"},
		{"no host", "acme", "https:///x", nil, "", "url"},
		{"userinfo", "acme", "https://user:pass@hooks.example.com/", nil, "", "url"},
		{"user only", "acme", "https://user@hooks.example.com/", nil, "", "url"},
		{"too long", "acme", "https://hooks.example.com/" + strings.Repeat("a", 2048), nil, "", "url"},
		{"bad port", "acme", "https://hooks.example.com:99999/", nil, "", "url"},
		{"zero port", "acme", "https://hooks.example.com:0/", nil, "", "url"},
		{"control character", "acme", "https://hooks.example.com/\n", nil, "", "url"},
		{"bad utf-8", "acme", "https://hooks.example.com/\xff", nil, "", "url"},
		{"loopback", "acme", "http://127.0.0.1:8080/", nil, "", "url"},
		{"loopback v6", "acme", "http://[::1]/", nil, "", "url"},
		{"mapped loopback", "acme", "http://[::ffff:127.0.0.1]/", nil, "", "url"},
		{"localhost", "acme", "http://localhost/", nil, "", "url"},
		{"localhost subdomain", "acme", "http://app.localhost:3000/", nil, "", "url"},
		{"private", "acme", "https://10.0.0.1/", nil, "", "url"},
		{"metadata service", "acme", "http://169.254.169.254/latest/meta-data", nil, "", "url"},
		{"unspecified", "acme", "http://0.0.0.0/", nil, "", "url"},
		{"cgnat", "acme", "http://100.64.1.1/", nil, "", "url"},
		{"unknown kind", "acme", "https://hooks.example.com/", []string{job.EventSubmitted, "job.exploded"}, "", "kinds[1]"},
		{"empty kind", "acme", "https://hooks.example.com/", []string{""}, "", "kinds[0]"},
		{"progress", "acme", "https://hooks.example.com/", []string{job.EventProgress}, "", "kinds[0]"},
		{"bad batch id", "acme", "https://hooks.example.com/", nil, "batch-1", "batch_id"},
		{"unknown batch", "acme", "https://hooks.example.com/", nil, job.NewID(now), "batch_id"},
		{"other tenant's batch", "acme", "https://hooks.example.com/", nil, otherBatch.ID, "batch_id"},
		{"bad tenant", "ac me", "https://hooks.example.com/", nil, "", "tenant"},
	}
	for _, tt := range badField {
		_, err := s.Create(t.Context(), tt.tenant, tt.url, tt.kinds, tt.batchID)
		var fe *job.FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field {
			t.Errorf("%s: Create(%q, %q, %q, %q) = %v, want a FieldError on %s", tt.name, tt.tenant, tt.url, tt.kinds, tt.batchID, err, tt.field)
		}
	}
	if ws, err := s.List(t.Context(), ""); err != nil || len(ws) != 0 {
		t.Errorf("List after refused creates = %d webhooks, %v; want none", len(ws), err)
	}

	e.submit("acme", "")
	newest := e.lastSeq()
	good := []struct {
		name    string
		tenant  string
		url     string
		kinds   []string
		batchID string
		want    job.Webhook
	}{
		{
			name: "every kind", tenant: "acme", url: "https://hooks.example.com/gantry?x=1",
			want: job.Webhook{Tenant: "acme", URL: "https://hooks.example.com/gantry?x=1"},
		},
		{
			name: "kinds deduplicated, batch", tenant: "acme", url: "http://hooks.example.com:8080/",
			kinds: []string{job.EventFailed, job.EventBatchDone, job.EventFailed}, batchID: batch.ID,
			want: job.Webhook{Tenant: "acme", URL: "http://hooks.example.com:8080/", Kinds: []string{job.EventFailed, job.EventBatchDone}, BatchID: batch.ID},
		},
		{
			name: "every tenant", tenant: "", url: "https://93.184.216.34/hook", batchID: otherBatch.ID,
			want: job.Webhook{URL: "https://93.184.216.34/hook", BatchID: otherBatch.ID},
		},
	}
	secretRe := regexp.MustCompile(`^[0-9a-f]{64}$`)
	secrets := map[string]bool{}
	for _, tt := range good {
		w, err := s.Create(t.Context(), tt.tenant, tt.url, tt.kinds, tt.batchID)
		if err != nil {
			t.Errorf("%s: Create: %v", tt.name, err)
			continue
		}
		if !job.ValidID(w.ID) || !secretRe.MatchString(w.Secret) || secrets[w.Secret] {
			t.Errorf("%s: ID %q, secret %q: want a UUID and a fresh 64-hex-digit secret", tt.name, w.ID, w.Secret)
		}
		secrets[w.Secret] = true
		want := tt.want
		want.ID, want.Secret, want.CreatedAt, want.Cursor = w.ID, w.Secret, now, newest
		if diff := cmp.Diff(&want, w); diff != "" {
			t.Errorf("%s: Create mismatch (-want +got):\n%s", tt.name, diff)
		}
		stored, err := s.Get(t.Context(), tt.tenant, w.ID)
		if err != nil {
			t.Fatalf("%s: Get: %v", tt.name, err)
		}
		if diff := cmp.Diff(&want, stored); diff != "" {
			t.Errorf("%s: Get mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
	ws, err := s.List(t.Context(), "acme")
	if err != nil || len(ws) != 2 {
		t.Errorf("List(acme) = %d webhooks, %v; want 2", len(ws), err)
	}
	if len(ws) > 0 {
		if _, err := s.Get(t.Context(), "globex", ws[0].ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get(other tenant) = %v, want ErrNotFound", err)
		}
	}
}

func TestCreateAllowPrivate(t *testing.T) {
	e := newEnv(t)
	s := webhook.New(e.st, e.hub, opts(t))
	for _, u := range []string{"http://127.0.0.1:8080/", "http://localhost/", "http://[::1]:9000/x", "http://10.0.0.1/"} {
		if _, err := s.Create(t.Context(), "acme", u, nil, ""); err != nil {
			t.Errorf("Create(%q) with AllowPrivate = %v, want nil", u, err)
		}
	}
}

func TestCreateLimit(t *testing.T) {
	e := newEnv(t)
	o := opts(t)
	o.MaxWebhooks = 2
	s := webhook.New(e.st, e.hub, o)
	for range 2 {
		e.create(s, "acme", "https://hooks.example.com/", nil, "")
	}
	if _, err := s.Create(t.Context(), "acme", "https://hooks.example.com/", nil, ""); !errors.Is(err, webhook.ErrLimit) {
		t.Errorf("third Create(acme) = %v, want ErrLimit", err)
	}
	// The limit is per tenant.
	e.create(s, "globex", "https://hooks.example.com/", nil, "")
	ws, _ := s.List(t.Context(), "")
	if err := s.Delete(t.Context(), "acme", ws[0].ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	e.create(s, "acme", "https://hooks.example.com/", nil, "")
}

func TestVerify(t *testing.T) {
	const secret = "2f1c0c4e0f0a4a8e9a1b3c5d7e9f1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b"
	body := []byte(`{"seq":7,"kind":"job.succeeded"}`)
	now := time.Now()
	good := webhook.Sign(secret, now, body)
	ts := fmt.Sprint(now.Unix())
	v1 := good[strings.Index(good, "v1=")+3:]

	tests := []struct {
		name      string
		secret    string
		header    string
		body      []byte
		tolerance time.Duration
		want      error
	}{
		{"valid", secret, good, body, time.Minute, nil},
		{"default tolerance", secret, good, body, 0, nil},
		{"spaces", secret, "t=" + ts + ", v1=" + v1, body, time.Minute, nil},
		{"rotated: one of two signatures matches", secret, "t=" + ts + ",v1=" + strings.Repeat("0", 64) + ",v1=" + v1, body, time.Minute, nil},
		{"unknown scheme ignored", secret, good + ",v0=abc", body, time.Minute, nil},
		{"wrong secret", "other", good, body, time.Minute, webhook.ErrSignature},
		{"tampered body", secret, good, []byte(`{"seq":7,"kind":"job.failed"}`), time.Minute, webhook.ErrSignature},
		{"tampered timestamp", secret, "t=" + fmt.Sprint(now.Unix()+1) + ",v1=" + v1, body, time.Minute, webhook.ErrSignature},
		{"empty header", secret, "", body, time.Minute, webhook.ErrSignature},
		{"no timestamp", secret, "v1=" + v1, body, time.Minute, webhook.ErrSignature},
		{"two timestamps", secret, "t=" + ts + ",t=" + ts + ",v1=" + v1, body, time.Minute, webhook.ErrSignature},
		{"bad timestamp", secret, "t=soon,v1=" + v1, body, time.Minute, webhook.ErrSignature},
		{"no signature", secret, "t=" + ts, body, time.Minute, webhook.ErrSignature},
		{"malformed", secret, "garbage", body, time.Minute, webhook.ErrSignature},
		{"uppercase hex", secret, "t=" + ts + ",v1=" + strings.ToUpper(v1), body, time.Minute, webhook.ErrSignature},
		{"expired", secret, webhook.Sign(secret, now.Add(-10*time.Minute), body), body, 5 * time.Minute, webhook.ErrStale},
		{"expired by default", secret, webhook.Sign(secret, now.Add(-10*time.Minute), body), body, 0, webhook.ErrStale},
		{"from the future", secret, webhook.Sign(secret, now.Add(10*time.Minute), body), body, 5 * time.Minute, webhook.ErrStale},
		{"old but tolerated", secret, webhook.Sign(secret, now.Add(-10*time.Minute), body), body, time.Hour, nil},
	}
	for _, tt := range tests {
		err := webhook.Verify(tt.secret, tt.header, tt.body, tt.tolerance)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: Verify(%q) = %v, want %v", tt.name, tt.header, err, tt.want)
		}
	}
}

func TestRelistFindsOtherServersWebhooks(t *testing.T) {
	e := newEnv(t)
	s, _ := e.start(opts(t))
	// Stored by another server while this one runs: found by the
	// periodic list.
	r := newReceiver(t)
	w := &job.Webhook{ID: job.NewID(time.Now()), Tenant: "acme", URL: r.URL(), Secret: "s", CreatedAt: time.Now(), Cursor: e.lastSeq()}
	if err := e.st.InsertWebhook(t.Context(), w); err != nil {
		t.Fatalf("InsertWebhook: %v", err)
	}
	j := e.submit("acme", "")
	e.waitCursor(w.ID, e.lastSeq())
	if diff := cmp.Diff([]string{job.EventSubmitted + " " + j.ID}, summary(r.events())); diff != "" {
		t.Errorf("deliveries mismatch (-want +got):\n%s", diff)
	}

	// The first Run delivered, so it runs: a second one is refused (with
	// a canceled context, a wrongly started one would return at once).
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := s.Run(ctx); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("second Run = %v, want an error saying one runs already", err)
	}
}
