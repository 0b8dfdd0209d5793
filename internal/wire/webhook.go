package wire

import "github.com/gantryhq/gantry/internal/job"

// WebhookRequest is the body of POST /v1/webhooks. Tenant may be set by
// admin credentials only (empty: every tenant for an admin, the key's own
// tenant otherwise). Empty Kinds mean every kind; an empty BatchID every
// batch.
type WebhookRequest struct {
	URL     string   `json:"url"`
	Kinds   []string `json:"kinds,omitempty"`
	BatchID string   `json:"batch_id,omitempty"`
	Tenant  string   `json:"tenant,omitempty"`
}

// Webhook is the webhook object. Secret, the HMAC-SHA256 key of the
// Gantry-Signature header, is only in the answer to POST /v1/webhooks.
type Webhook struct {
	ID              string   `json:"id"`
	Tenant          string   `json:"tenant"`
	URL             string   `json:"url"`
	Kinds           []string `json:"kinds"`
	BatchID         string   `json:"batch_id,omitempty"`
	Secret          string   `json:"secret,omitempty"`
	CreatedAt       *Time    `json:"created_at"`
	LastDeliveredAt *Time    `json:"last_delivered_at"`
	LastError       string   `json:"last_error"`
	Failures        int      `json:"failures"`
}

// FromWebhook converts a stored webhook; its secret is included only when
// withSecret is set.
func FromWebhook(w *job.Webhook, withSecret bool) Webhook {
	o := Webhook{ID: w.ID, Tenant: w.Tenant, URL: w.URL, Kinds: w.Kinds, BatchID: w.BatchID,
		CreatedAt: T(w.CreatedAt), LastDeliveredAt: T(w.LastDeliveredAt), LastError: w.LastError,
		Failures: w.Failures}
	if o.Kinds == nil {
		o.Kinds = []string{}
	}
	if withSecret {
		o.Secret = w.Secret
	}
	return o
}
