package test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
)

func TestClientJobLifecycle(t *testing.T) {
	s := startClientServer(t, clientConfig())
	c, ctx := s.c, t.Context()
	if err := c.Healthz(ctx); err != nil {
		t.Errorf("Healthz() = %v", err)
	}
	if err := c.Readyz(ctx); err != nil {
		t.Errorf("Readyz() = %v", err)
	}

	req := client.JobRequest{
		Type: "report.render", Name: "monthly", Queue: "lifecycle", Priority: 7,
		Params: map[string]any{"month": "2026-01"}, MaxAttempts: 3, Timeout: 90 * time.Second,
		Tags: []string{"finance", "monthly"}, Metadata: map[string]string{"owner": "ada"}, Delay: time.Hour,
		UniqueKey: "report-2026-01", SingletonKey: "reports",
	}
	j := clientSubmit(t, c, req)
	want := &client.Job{
		ID: j.ID, Tenant: "default", Type: "report.render", Name: "monthly", Queue: "lifecycle", Priority: 7,
		Params: json.RawMessage(`{"month":"2026-01"}`), MaxAttempts: 3, Timeout: 90 * time.Second,
		Tags: []string{"finance", "monthly"}, Metadata: map[string]string{"owner": "ada"},
		UniqueKey: "report-2026-01", SingletonKey: "reports", State: gantry.StateScheduled,
	}
	ignoreTimes := cmpopts.IgnoreFields(client.Job{}, "RunAt", "CreatedAt")
	if diff := cmp.Diff(want, j, ignoreTimes); diff != "" {
		t.Errorf("Submit() (-want +got):\n%s", diff)
	}
	if j.CreatedAt.IsZero() || j.RunAt.Sub(j.CreatedAt) < 59*time.Minute {
		t.Errorf("Submit() = created %v, run at %v; want a run_at an hour later", j.CreatedAt, j.RunAt)
	}

	// The same unique key while the job is unfinished: no new job.
	again := clientSubmit(t, c, req)
	if again.ID != j.ID || !again.Deduplicated || j.Deduplicated {
		t.Errorf("Submit(same unique key) = %s deduplicated %t, want %s deduplicated (first: %t)", again.ID, again.Deduplicated, j.ID, j.Deduplicated)
	}

	got, err := c.GetJob(ctx, j.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(j, got); diff != "" {
		t.Errorf("GetJob() (-submitted +got):\n%s", diff)
	}

	other := clientSubmit(t, c, client.JobRequest{Type: "other", Queue: "lifecycle", Tenant: "acme"})
	if other.Tenant != "acme" {
		t.Errorf("Submit(tenant acme) with the admin token = tenant %q", other.Tenant)
	}
	var ids []string
	for lj, err := range c.ListJobs(ctx, client.ListJobsOptions{Queue: "lifecycle"}) {
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, lj.ID)
	}
	if diff := cmp.Diff([]string{other.ID, j.ID}, ids); diff != "" {
		t.Errorf("ListJobs(queue) newest first (-want +got):\n%s", diff)
	}

	// Cancel, retry and delete follow the state machine.
	steps := []struct {
		name  string
		do    func() (*client.Job, error)
		state gantry.State
		err   error
	}{
		{"delete an unfinished job", func() (*client.Job, error) { return nil, c.DeleteJob(ctx, j.ID) }, "", client.ErrConflict},
		{"retry a scheduled job", func() (*client.Job, error) { return c.RetryJob(ctx, j.ID) }, "", client.ErrConflict},
		{"cancel a scheduled job", func() (*client.Job, error) { return c.CancelJob(ctx, j.ID) }, gantry.StateCanceled, nil},
		{"cancel it again", func() (*client.Job, error) { return c.CancelJob(ctx, j.ID) }, "", client.ErrConflict},
		{"retry a canceled job", func() (*client.Job, error) { return c.RetryJob(ctx, j.ID) }, gantry.StateQueued, nil},
		{"cancel the queued job", func() (*client.Job, error) { return c.CancelJob(ctx, j.ID) }, gantry.StateCanceled, nil},
		{"delete the finished job", func() (*client.Job, error) { return nil, c.DeleteJob(ctx, j.ID) }, "", nil},
		{"get the deleted job", func() (*client.Job, error) { return c.GetJob(ctx, j.ID) }, "", client.ErrNotFound},
		{"cancel the deleted job", func() (*client.Job, error) { return c.CancelJob(ctx, j.ID) }, "", client.ErrNotFound},
		{"get a malformed id", func() (*client.Job, error) { return c.GetJob(ctx, "../nope") }, "", client.ErrNotFound},
	}
	for _, st := range steps {
		got, err := st.do()
		if !errors.Is(err, st.err) || (st.err == nil && err != nil) {
			t.Fatalf("%s: error %v, want %v", st.name, err, st.err)
		}
		if st.state != "" && (got == nil || got.State != st.state) {
			t.Fatalf("%s: job %+v, want state %s", st.name, got, st.state)
		}
	}
}

func TestClientErrors(t *testing.T) {
	s := startClientServer(t, clientConfig())
	c, ctx := s.c, t.Context()
	bad, err := client.New(s.url, client.WithToken("not-the-token"))
	if err != nil {
		t.Fatal(err)
	}
	none, err := client.New(s.url)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 2<<20)
	tests := []struct {
		name  string
		call  func(t *testing.T) error
		want  error
		field string
	}{
		{"bad token", func(*testing.T) error { _, err := bad.GetJob(ctx, "x"); return err }, client.ErrUnauthorized, ""},
		{"no token", func(*testing.T) error { _, err := none.ListQueues(ctx); return err }, client.ErrUnauthorized, ""},
		{"no token for events", func(*testing.T) error { _, err := none.Events(ctx, client.EventsOptions{}); return err }, client.ErrUnauthorized, ""},
		{"missing type", func(*testing.T) error { _, err := c.Submit(ctx, client.JobRequest{}); return err }, client.ErrInvalid, "type"},
		{"bad type", func(*testing.T) error { _, err := c.Submit(ctx, client.JobRequest{Type: "a b"}); return err }, client.ErrInvalid, "type"},
		{"priority out of range", func(*testing.T) error {
			_, err := c.Submit(ctx, client.JobRequest{Type: "t", Priority: 500})
			return err
		}, client.ErrInvalid, "priority"},
		{"params over 256 KiB", func(*testing.T) error {
			_, err := c.Submit(ctx, client.JobRequest{Type: "t", Params: strings.Repeat("p", 300<<10)})
			return err
		}, client.ErrTooLarge, "params"},
		{"body over 1 MiB", func(*testing.T) error { _, err := c.Submit(ctx, client.JobRequest{Type: "t", Name: big}); return err }, client.ErrTooLarge, "body"},
		{"list limit", func(*testing.T) error { _, err := c.ListJobsPage(ctx, client.ListJobsOptions{Limit: 5000}); return err }, client.ErrInvalid, "limit"},
		{"list state", func(*testing.T) error {
			_, err := c.ListJobsPage(ctx, client.ListJobsOptions{State: "done"})
			return err
		}, client.ErrInvalid, "state"},
		{"bad batch job", func(*testing.T) error {
			_, err := c.CreateBatch(ctx, client.BatchRequest{Jobs: []client.JobRequest{{Type: "ok"}, {Type: ""}}})
			return err
		}, client.ErrInvalid, "jobs[1].type"},
		{"bad event kind", func(*testing.T) error {
			_, err := c.Events(ctx, client.EventsOptions{Kinds: []string{"job.exploded"}})
			return err
		}, client.ErrInvalid, "kinds"},
		{"unknown batch", func(*testing.T) error { _, err := c.GetBatch(ctx, "0193c1d4-0000-7000-8000-000000000000"); return err }, client.ErrNotFound, ""},
		{"unknown worker", func(*testing.T) error { return c.RemoveWorker(ctx, "0193c1d4-0000-7000-8000-000000000000") }, client.ErrNotFound, ""},
		{"unknown webhook", func(*testing.T) error {
			_, err := c.GetWebhook(ctx, "0193c1d4-0000-7000-8000-000000000000")
			return err
		}, client.ErrNotFound, ""},
		{"stale lease token", func(t *testing.T) error {
			j := clientSubmit(t, c, client.JobRequest{Type: "t", Queue: "never-leased"})
			_, err := c.CompleteJob(ctx, j.ID, 12345, "done")
			return err
		}, client.ErrConflict, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(t)
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			e := clientErr(t, err)
			if e.Field != tt.field {
				t.Errorf("Field = %q, want %q (%v)", e.Field, tt.field, err)
			}
			if e.Title == "" || e.Type == "" {
				t.Errorf("error %+v lacks the problem's type and title", e)
			}
		})
	}
}

func TestClientListPaging(t *testing.T) {
	s := startClientServer(t, clientConfig())
	c, ctx := s.c, t.Context()
	var want []string
	for range 7 {
		j := clientSubmit(t, c, client.JobRequest{Type: "page.me", Queue: "paging", Tags: []string{"p"}})
		want = append([]string{j.ID}, want...) // newest first
	}
	clientSubmit(t, c, client.JobRequest{Type: "page.me", Queue: "paging"}) // no tag

	var got []string
	for j, err := range c.ListJobs(ctx, client.ListJobsOptions{Tag: "p", Limit: 3}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, j.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ListJobs(tag, limit 3) (-want +got):\n%s", diff)
	}

	var pages [][]string
	cursor := ""
	for {
		p, err := c.ListJobsPage(ctx, client.ListJobsOptions{Tag: "p", Type: "page.me", State: gantry.StateQueued, Limit: 3, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, j := range p.Items {
			ids = append(ids, j.ID)
		}
		pages = append(pages, ids)
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	if diff := cmp.Diff([][]string{want[:3], want[3:6], want[6:]}, pages); diff != "" {
		t.Errorf("ListJobsPage pages (-want +got):\n%s", diff)
	}

	// Resuming an iteration from a page's cursor.
	p, err := c.ListJobsPage(ctx, client.ListJobsOptions{Tag: "p", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for j, err := range c.ListJobs(ctx, client.ListJobsOptions{Tag: "p", Limit: 2, Cursor: p.NextCursor}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, j.ID)
	}
	if diff := cmp.Diff(want[2:], got); diff != "" {
		t.Errorf("ListJobs(from the second page) (-want +got):\n%s", diff)
	}
}

func TestClientBatches(t *testing.T) {
	s := startClientServer(t, clientConfig())
	c, ctx := s.c, t.Context()
	created, err := c.CreateBatch(ctx, client.BatchRequest{
		Name: "import", Open: true,
		Jobs: []client.JobRequest{
			{Type: "import.row", Queue: "batch-q", Params: map[string]int{"row": 1}},
			{Type: "import.row", Queue: "batch-q", Params: map[string]int{"row": 2}},
		},
		OnComplete: &client.JobRequest{Type: "import.done", Queue: "batch-done"},
	})
	if err != nil {
		t.Fatal(err)
	}
	b := created.Batch
	if b.ID == "" || b.Name != "import" || b.Closed || b.Total != 2 || len(created.JobIDs) != 2 {
		t.Fatalf("CreateBatch() = %+v, job IDs %v", b, created.JobIDs)
	}
	more, err := c.AddToBatch(ctx, b.ID, []client.JobRequest{{Type: "import.row", Queue: "batch-q"}})
	if err != nil || len(more) != 1 {
		t.Fatalf("AddToBatch() = %v, %v", more, err)
	}
	allIDs := append(slices.Clone(created.JobIDs), more...)

	var got []string
	for j, err := range c.ListBatchJobs(ctx, b.ID, client.ListBatchJobsOptions{Limit: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if j.BatchID != b.ID {
			t.Errorf("ListBatchJobs yielded job %s of batch %q", j.ID, j.BatchID)
		}
		got = append(got, j.ID)
	}
	if diff := cmp.Diff(allIDs, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("ListBatchJobs (-want +got):\n%s", diff)
	}
	page, err := c.ListBatchJobsPage(ctx, b.ID, client.ListBatchJobsOptions{State: gantry.StateQueued, Limit: 2})
	if err != nil || len(page.Items) != 2 || page.NextCursor == "" {
		t.Errorf("ListBatchJobsPage(limit 2) = %d items, next %q, %v; want 2 and a next page", len(page.Items), page.NextCursor, err)
	}

	gb, err := c.GetBatch(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if gb.Total != 3 || gb.Counts[gantry.StateQueued] != 3 || gb.Closed || gb.Done {
		t.Errorf("GetBatch() = %+v, want 3 queued jobs, open", gb)
	}
	if cb, err := c.CloseBatch(ctx, b.ID); err != nil || !cb.Closed {
		t.Fatalf("CloseBatch() = %+v, %v", cb, err)
	}
	if _, err := c.AddToBatch(ctx, b.ID, []client.JobRequest{{Type: "late"}}); !errors.Is(err, client.ErrConflict) {
		t.Errorf("AddToBatch(closed batch) = %v, want ErrConflict", err)
	}
	cb, err := c.CancelBatch(ctx, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if cb.Counts[gantry.StateCanceled] != 3 {
		t.Errorf("CancelBatch() counts = %v, want 3 canceled", cb.Counts)
	}
	clientWaitFor(t, "the canceled batch to be done", func() bool {
		gb, err = c.GetBatch(ctx, b.ID)
		return err == nil && gb.Done
	})
	if gb.OnCompleteJobID == "" || gb.FinishedAt.IsZero() {
		t.Errorf("done batch = %+v, want its on_complete job and finish time", gb)
	}
	oc, err := c.GetJob(ctx, gb.OnCompleteJobID)
	if err != nil || oc.Type != "import.done" {
		t.Errorf("on_complete job = %+v, %v; want type import.done", oc, err)
	}

	var found bool
	for lb, err := range c.ListBatches(ctx, client.ListBatchesOptions{Limit: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		found = found || lb.ID == b.ID
	}
	if !found {
		t.Errorf("ListBatches() misses batch %s", b.ID)
	}
}

func TestClientWebhooks(t *testing.T) {
	s := startClientServer(t, clientConfig())
	c, ctx := s.c, t.Context()
	h, err := c.CreateWebhook(ctx, client.WebhookRequest{URL: "https://hooks.example.com/gantry", Kinds: []string{client.EventSucceeded, client.EventFailed}})
	if err != nil {
		t.Fatal(err)
	}
	if h.ID == "" || h.Secret == "" || h.URL != "https://hooks.example.com/gantry" || h.CreatedAt.IsZero() {
		t.Errorf("CreateWebhook() = %+v, want an id, a secret and the URL", h)
	}
	got, err := c.GetWebhook(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Secret != "" {
		t.Errorf("GetWebhook() shows the secret again")
	}
	h.Secret = ""
	if diff := cmp.Diff(h, got, cmpopts.IgnoreFields(client.Webhook{}, "LastDeliveredAt", "LastError", "Failures")); diff != "" {
		t.Errorf("GetWebhook() (-created +got):\n%s", diff)
	}
	list, err := c.ListWebhooks(ctx)
	if err != nil || len(list) != 1 || list[0].ID != h.ID {
		t.Errorf("ListWebhooks() = %+v, %v; want the webhook", list, err)
	}
	if _, err := c.CreateWebhook(ctx, client.WebhookRequest{URL: "http://127.0.0.1:9/hook"}); !errors.Is(err, client.ErrInvalid) || clientErr(t, err).Field != "url" {
		t.Errorf("CreateWebhook(loopback) = %v, want ErrInvalid naming url", err)
	}
	if err := c.DeleteWebhook(ctx, h.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetWebhook(ctx, h.ID); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("GetWebhook(deleted) = %v, want ErrNotFound", err)
	}
	if err := c.DeleteWebhook(ctx, h.ID); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("DeleteWebhook(deleted) = %v, want ErrNotFound", err)
	}
}

// TestClientWebhookDelivery checks that the secret CreateWebhook returns
// signs the deliveries as the Webhook type documents.
func TestClientWebhookDelivery(t *testing.T) {
	type delivery struct {
		sig, kind string
		body      []byte
	}
	got := make(chan delivery, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- delivery{sig: r.Header.Get("Gantry-Signature"), kind: r.Header.Get("Gantry-Event"), body: b}
	}))
	defer recv.Close()
	cfg := clientConfig()
	cfg.Webhooks.AllowPrivate = true
	s := startClientServer(t, cfg)
	c := s.c
	h, err := c.CreateWebhook(t.Context(), client.WebhookRequest{URL: recv.URL + "/hook", Kinds: []string{client.EventSubmitted}})
	if err != nil {
		t.Fatal(err)
	}
	j := clientSubmit(t, c, client.JobRequest{Type: "hooked"})
	var d delivery
	select {
	case d = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no delivery")
	}
	var e struct {
		Kind  string `json:"kind"`
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal(d.body, &e); err != nil || e.Kind != client.EventSubmitted || e.JobID != j.ID || d.kind != client.EventSubmitted {
		t.Errorf("delivery %s (%s) = %+v, %v; want job.submitted of %s", d.body, d.kind, e, err, j.ID)
	}
	ts, v1, ok := strings.Cut(d.sig, ",v1=")
	ts = strings.TrimPrefix(ts, "t=")
	mac := hmac.New(sha256.New, []byte(h.Secret))
	mac.Write([]byte(ts + "." + string(d.body)))
	if !ok || !hmac.Equal([]byte(v1), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		t.Errorf("Gantry-Signature %q does not match the webhook's secret", d.sig)
	}
	waitDelivered := func() bool {
		wh, err := c.GetWebhook(t.Context(), h.ID)
		return err == nil && !wh.LastDeliveredAt.IsZero() && wh.Failures == 0
	}
	clientWaitFor(t, "the delivery to be recorded", waitDelivered)
}
