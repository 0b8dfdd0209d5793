package postgres

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/rowscan"
)

const webhookCols = `id, tenant, url, kinds, batch_id, secret, created_at, cursor, last_delivered_at, last_error, failures`

func scanWebhook(r scanner) (*job.Webhook, error) {
	var w job.Webhook
	var kinds string
	var created, delivered int64
	if err := r.Scan(&w.ID, &w.Tenant, &w.URL, &kinds, &w.BatchID, &w.Secret, &created, &w.Cursor, &delivered, &w.LastError, &w.Failures); err != nil {
		return nil, err
	}
	if kinds != "" {
		if err := json.Unmarshal([]byte(kinds), &w.Kinds); err != nil {
			return nil, err
		}
	}
	w.CreatedAt, w.LastDeliveredAt = i2t(created), i2t(delivered)
	return &w, nil
}

// InsertWebhook implements [store.Store].
func (s *Store) InsertWebhook(ctx context.Context, w *job.Webhook) error {
	return s.write(ctx, "insert webhook", func(t *ptx) error {
		_, err := t.exec(`INSERT INTO webhooks (`+webhookCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			w.ID, w.Tenant, w.URL, rowscan.JSONSlice(w.Kinds), w.BatchID, w.Secret, t2i(w.CreatedAt), w.Cursor,
			t2i(w.LastDeliveredAt), w.LastError, w.Failures)
		return err
	})
}

// GetWebhook implements [store.Store].
func (s *Store) GetWebhook(ctx context.Context, tenant, id string) (*job.Webhook, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	w, err := scanWebhook(s.pool.QueryRow(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE id = $1 AND ($2 = '' OR tenant = $2)`, id, tenant))
	if isNoRows(err) {
		return nil, fmt.Errorf("postgres: webhook %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, s.wrap("get webhook", err)
	}
	return w, nil
}

// ListWebhooks implements [store.Store].
func (s *Store) ListWebhooks(ctx context.Context, tenant string) ([]*job.Webhook, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE $1 = '' OR tenant = $1 ORDER BY created_at, id`, tenant)
	if err != nil {
		return nil, s.wrap("list webhooks", err)
	}
	defer rows.Close()
	var out []*job.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, s.wrap("list webhooks", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, s.wrap("list webhooks", err)
	}
	return out, nil
}

// DeleteWebhook implements [store.Store].
func (s *Store) DeleteWebhook(ctx context.Context, tenant, id string) error {
	return s.write(ctx, "delete webhook", func(t *ptx) error {
		tag, err := t.exec(`DELETE FROM webhooks WHERE id = $1 AND ($2 = '' OR tenant = $2)`, id, tenant)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: webhook %s: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// UpdateWebhookDelivery implements [store.Store].
func (s *Store) UpdateWebhookDelivery(ctx context.Context, p *store.WebhookDeliveryParams) error {
	return s.write(ctx, "update webhook", func(t *ptx) error {
		tag, err := t.exec(`UPDATE webhooks SET cursor = greatest(cursor, $1),
			last_delivered_at = CASE WHEN $2::bigint = 0 THEN last_delivered_at ELSE $2::bigint END,
			last_error = $3, failures = $4 WHERE id = $5`,
			p.Cursor, t2i(p.LastDeliveredAt), p.LastError, p.Failures, p.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("postgres: webhook %s: %w", p.ID, store.ErrNotFound)
		}
		return nil
	})
}
