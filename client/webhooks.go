package client

import (
	"context"
	"net/url"
	"slices"
	"time"

	"github.com/gantryhq/gantry/internal/wire"
)

// WebhookRequest is a webhook to create.
type WebhookRequest struct {
	// URL receives the events: an absolute http or https URL. The server
	// refuses internal addresses unless configured to allow them.
	URL string
	// Kinds are the event kinds delivered. Empty: every kind.
	Kinds []string
	// BatchID, if set, delivers only the events of that batch.
	BatchID string
	// Tenant is the tenant whose events are delivered; only admin tokens
	// may set it (empty: every tenant for an admin).
	Tenant string
}

// Webhook is a subscription that POSTs matching events to a URL, signed
// with the Gantry-Signature header: "t=<unix time>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" keyed with the secret>".
type Webhook struct {
	ID      string
	Tenant  string
	URL     string
	Kinds   []string // empty: every kind
	BatchID string   // empty: every batch
	// Secret is the signing key. Only [Client.CreateWebhook] returns it.
	Secret    string
	CreatedAt time.Time
	// Delivery status: the last successful delivery, the last error and
	// the number of consecutive failed attempts.
	LastDeliveredAt time.Time
	LastError       string
	Failures        int
}

func fromWireWebhook(w *wire.Webhook) *Webhook {
	return &Webhook{ID: w.ID, Tenant: w.Tenant, URL: w.URL, Kinds: w.Kinds, BatchID: w.BatchID, Secret: w.Secret,
		CreatedAt: tm(w.CreatedAt), LastDeliveredAt: tm(w.LastDeliveredAt), LastError: w.LastError, Failures: w.Failures}
}

func webhookPath(id string) string { return "/v1/webhooks/" + url.PathEscape(id) }

// CreateWebhook creates a webhook; the answer holds its secret, which is
// not shown again. It receives the events from its creation on.
func (c *Client) CreateWebhook(ctx context.Context, r WebhookRequest) (*Webhook, error) {
	body := wire.WebhookRequest{URL: r.URL, Kinds: slices.Clone(r.Kinds), BatchID: r.BatchID, Tenant: r.Tenant}
	var w wire.Webhook
	if _, err := c.do(ctx, call{method: "POST", path: "/v1/webhooks", body: &body, out: &w}); err != nil {
		return nil, err
	}
	return fromWireWebhook(&w), nil
}

// GetWebhook returns a webhook, without its secret.
func (c *Client) GetWebhook(ctx context.Context, id string) (*Webhook, error) {
	var w wire.Webhook
	if _, err := c.do(ctx, call{method: "GET", path: webhookPath(id), out: &w}); err != nil {
		return nil, err
	}
	return fromWireWebhook(&w), nil
}

// ListWebhooks returns the webhooks, oldest first, without their secrets.
func (c *Client) ListWebhooks(ctx context.Context) ([]*Webhook, error) {
	return getList(ctx, c, "/v1/webhooks", fromWireWebhook)
}

// DeleteWebhook deletes a webhook: its deliveries stop.
func (c *Client) DeleteWebhook(ctx context.Context, id string) error {
	_, err := c.do(ctx, call{method: "DELETE", path: webhookPath(id)})
	return err
}
