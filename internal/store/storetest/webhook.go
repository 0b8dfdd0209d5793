package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// fullWebhook returns a webhook record with every field set.
func fullWebhook(now time.Time, tenant string) *job.Webhook {
	return &job.Webhook{
		ID: job.NewID(now), Tenant: tenant, URL: "https://hooks.example/" + tenant,
		Kinds: []string{job.EventSucceeded, job.EventFailed}, BatchID: job.NewID(now),
		Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQ", CreatedAt: now, Cursor: 42,
		LastDeliveredAt: now.Add(-time.Minute), LastError: "HTTP 500", Failures: 3,
	}
}

func (h *harness) insertWebhook(w *job.Webhook) {
	h.t.Helper()
	if err := h.s.InsertWebhook(h.t.Context(), w); err != nil {
		h.t.Fatalf("InsertWebhook: %v", err)
	}
}

func (h *harness) getWebhook(id string) *job.Webhook {
	h.t.Helper()
	w, err := h.s.GetWebhook(h.t.Context(), "", id)
	if err != nil {
		h.t.Fatalf("GetWebhook(%s): %v", id, err)
	}
	return w
}

func (h *harness) updateWebhook(p store.WebhookDeliveryParams) {
	h.t.Helper()
	if err := h.s.UpdateWebhookDelivery(h.t.Context(), &p); err != nil {
		h.t.Fatalf("UpdateWebhookDelivery(%+v): %v", p, err)
	}
}

// wantWebhooks checks ListWebhooks(tenant).
func (h *harness) wantWebhooks(tenant string, want []*job.Webhook) {
	h.t.Helper()
	got, err := h.s.ListWebhooks(h.t.Context(), tenant)
	if err != nil {
		h.t.Fatalf("ListWebhooks(%q): %v", tenant, err)
	}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		h.t.Errorf("ListWebhooks(%q) mismatch (-want +got):\n%s", tenant, diff)
	}
}

func testWebhook(t *testing.T, newStore newStoreFunc) {
	t.Run("InsertAndGet", func(t *testing.T) {
		tests := []struct {
			name string
			w    *job.Webhook
		}{
			{"every field", fullWebhook(t0, tenantA)},
			{"every kind and batch", &job.Webhook{ID: job.NewID(t0), Tenant: tenantA, URL: "http://hooks.example/", Secret: "s", CreatedAt: t0}},
			{"every tenant", &job.Webhook{ID: job.NewID(t0), URL: "https://admin.example/hook", Kinds: []string{job.EventBatchDone}, Secret: "s", CreatedAt: t0, Cursor: 7}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				h := begin(t, newStore)
				h.insertWebhook(tt.w)
				if diff := cmp.Diff(tt.w, h.getWebhook(tt.w.ID), cmpOpts); diff != "" {
					t.Errorf("GetWebhook(%q, %s) mismatch (-want +got):\n%s", "", tt.w.ID, diff)
				}
				got, err := h.s.GetWebhook(t.Context(), tt.w.Tenant, tt.w.ID)
				if err != nil {
					t.Fatalf("GetWebhook(%q, %s): %v", tt.w.Tenant, tt.w.ID, err)
				}
				if diff := cmp.Diff(tt.w, got, cmpOpts); diff != "" {
					t.Errorf("GetWebhook(%q, %s) mismatch (-want +got):\n%s", tt.w.Tenant, tt.w.ID, diff)
				}
			})
		}
	})

	t.Run("TenantScoping", func(t *testing.T) {
		h := begin(t, newStore)
		a := fullWebhook(t0, tenantA)
		b := fullWebhook(at(time.Second), tenantB)
		h.insertWebhook(a)
		h.insertWebhook(b)

		_, err := h.s.GetWebhook(t.Context(), tenantB, a.ID)
		wantErr(t, "GetWebhook(other tenant)", err, store.ErrNotFound)
		_, err = h.s.GetWebhook(t.Context(), tenantA, job.NewID(t0))
		wantErr(t, "GetWebhook(unknown)", err, store.ErrNotFound)
		err = h.s.DeleteWebhook(t.Context(), tenantB, a.ID)
		wantErr(t, "DeleteWebhook(other tenant)", err, store.ErrNotFound)
		// The failed delete changed nothing.
		if diff := cmp.Diff(a, h.getWebhook(a.ID), cmpOpts); diff != "" {
			t.Errorf("GetWebhook after a refused delete mismatch (-want +got):\n%s", diff)
		}
		h.wantWebhooks(tenantA, []*job.Webhook{a})
		h.wantWebhooks(tenantB, []*job.Webhook{b})
		h.wantWebhooks("initech", nil)
		h.wantWebhooks("", []*job.Webhook{a, b})
	})

	t.Run("ListOldestFirst", func(t *testing.T) {
		h := begin(t, newStore)
		// Inserted out of order: the list follows CreatedAt.
		w2 := fullWebhook(at(2*time.Second), tenantA)
		w1 := fullWebhook(at(1*time.Second), tenantA)
		w3 := fullWebhook(at(3*time.Second), tenantB)
		for _, w := range []*job.Webhook{w2, w3, w1} {
			h.insertWebhook(w)
		}
		h.wantWebhooks("", []*job.Webhook{w1, w2, w3})
		h.wantWebhooks(tenantA, []*job.Webhook{w1, w2})
	})

	t.Run("Delete", func(t *testing.T) {
		h := begin(t, newStore)
		a := fullWebhook(t0, tenantA)
		keep := fullWebhook(at(time.Second), tenantA)
		h.insertWebhook(a)
		h.insertWebhook(keep)
		if err := h.s.DeleteWebhook(t.Context(), tenantA, a.ID); err != nil {
			t.Fatalf("DeleteWebhook: %v", err)
		}
		_, err := h.s.GetWebhook(t.Context(), "", a.ID)
		wantErr(t, "GetWebhook(deleted)", err, store.ErrNotFound)
		err = h.s.DeleteWebhook(t.Context(), tenantA, a.ID)
		wantErr(t, "DeleteWebhook(deleted)", err, store.ErrNotFound)
		err = h.s.UpdateWebhookDelivery(t.Context(), &store.WebhookDeliveryParams{ID: a.ID, Cursor: 100})
		wantErr(t, "UpdateWebhookDelivery(deleted)", err, store.ErrNotFound)
		h.wantWebhooks("", []*job.Webhook{keep})
		// An admin deletes any tenant's webhook.
		if err := h.s.DeleteWebhook(t.Context(), "", keep.ID); err != nil {
			t.Fatalf("DeleteWebhook(admin): %v", err)
		}
		h.wantWebhooks("", nil)
	})

	t.Run("Delivery", func(t *testing.T) {
		h := begin(t, newStore)
		w := &job.Webhook{ID: job.NewID(t0), Tenant: tenantA, URL: "https://hooks.example/", Secret: "s", CreatedAt: t0, Cursor: 10}
		other := fullWebhook(t0, tenantB)
		h.insertWebhook(w)
		h.insertWebhook(other)
		want := *w

		steps := []struct {
			name string
			p    store.WebhookDeliveryParams
			// apply turns the expected record into what the store holds
			// after the step.
			apply func(w *job.Webhook)
		}{
			{
				name: "a failure records the status only",
				p:    store.WebhookDeliveryParams{ID: w.ID, Cursor: 10, LastError: "HTTP 503", Failures: 1},
				apply: func(w *job.Webhook) {
					w.LastError, w.Failures = "HTTP 503", 1
				},
			},
			{
				name: "a delivery moves the cursor and clears the status",
				p:    store.WebhookDeliveryParams{ID: w.ID, Cursor: 25, LastDeliveredAt: at(time.Minute)},
				apply: func(w *job.Webhook) {
					w.Cursor, w.LastDeliveredAt, w.LastError, w.Failures = 25, at(time.Minute), "", 0
				},
			},
			{
				name: "a smaller cursor is ignored, the status is recorded",
				p:    store.WebhookDeliveryParams{ID: w.ID, Cursor: 20, LastError: "timeout", Failures: 2},
				apply: func(w *job.Webhook) {
					w.LastError, w.Failures = "timeout", 2
				},
			},
			{
				name:  "a zero cursor is ignored, a zero LastDeliveredAt keeps the last one",
				p:     store.WebhookDeliveryParams{ID: w.ID},
				apply: func(w *job.Webhook) { w.LastError, w.Failures = "", 0 },
			},
			{
				name: "an equal cursor is kept, LastDeliveredAt moves",
				p:    store.WebhookDeliveryParams{ID: w.ID, Cursor: 25, LastDeliveredAt: at(2 * time.Minute)},
				apply: func(w *job.Webhook) {
					w.LastDeliveredAt = at(2 * time.Minute)
				},
			},
			{
				name:  "a larger cursor moves it",
				p:     store.WebhookDeliveryParams{ID: w.ID, Cursor: 1 << 40},
				apply: func(w *job.Webhook) { w.Cursor = 1 << 40 },
			},
		}
		for _, s := range steps {
			h.updateWebhook(s.p)
			s.apply(&want)
			if diff := cmp.Diff(&want, h.getWebhook(w.ID), cmpOpts); diff != "" {
				t.Errorf("after %s (%+v): GetWebhook mismatch (-want +got):\n%s", s.name, s.p, diff)
			}
		}
		// Another webhook is untouched.
		if diff := cmp.Diff(other, h.getWebhook(other.ID), cmpOpts); diff != "" {
			t.Errorf("other webhook changed (-want +got):\n%s", diff)
		}
		err := h.s.UpdateWebhookDelivery(t.Context(), &store.WebhookDeliveryParams{ID: job.NewID(t0), Cursor: 1})
		wantErr(t, "UpdateWebhookDelivery(unknown)", err, store.ErrNotFound)
	})
}
