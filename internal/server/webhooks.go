package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/gantryhq/gantry/internal/api"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/webhook"
)

// webhookService adapts the webhook service to the API: a tenant over its
// webhook quota becomes [api.ErrQuota].
type webhookService struct{ *webhook.Service }

var _ api.WebhookService = webhookService{}

// Create implements [api.WebhookService].
func (w webhookService) Create(ctx context.Context, tenant, url string, kinds []string, batchID string) (*job.Webhook, error) {
	wh, err := w.Service.Create(ctx, tenant, url, kinds, batchID)
	if errors.Is(err, webhook.ErrLimit) {
		return nil, fmt.Errorf("server: the tenant has the most webhooks allowed: %w", api.ErrQuota)
	}
	return wh, err
}
