package sqlite

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
	return s.w.do(ctx, func(tx *wtx) error {
		_, err := tx.w.exec(`INSERT INTO webhooks (`+webhookCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			w.ID, w.Tenant, w.URL, rowscan.JSONSlice(w.Kinds), w.BatchID, w.Secret, t2i(w.CreatedAt), w.Cursor,
			t2i(w.LastDeliveredAt), w.LastError, w.Failures)
		if err != nil {
			return unavailable("insert webhook", err)
		}
		return nil
	})
}

// GetWebhook implements [store.Store].
func (s *Store) GetWebhook(ctx context.Context, tenant, id string) (*job.Webhook, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	w, err := scanWebhook(s.rdb.QueryRowContext(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE id = ? AND (? = '' OR tenant = ?)`, id, tenant, tenant))
	if isNoRows(err) {
		return nil, fmt.Errorf("sqlite: webhook %s: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("get webhook", err)
	}
	return w, nil
}

// ListWebhooks implements [store.Store].
func (s *Store) ListWebhooks(ctx context.Context, tenant string) ([]*job.Webhook, error) {
	if err := s.checkOpen(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT `+webhookCols+` FROM webhooks WHERE ? = '' OR tenant = ? ORDER BY created_at, id`, tenant, tenant)
	if err != nil {
		return nil, unavailable("list webhooks", err)
	}
	defer rows.Close()
	var out []*job.Webhook
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, unavailable("list webhooks", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("list webhooks", err)
	}
	return out, nil
}

// DeleteWebhook implements [store.Store].
func (s *Store) DeleteWebhook(ctx context.Context, tenant, id string) error {
	return s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.w.exec(`DELETE FROM webhooks WHERE id = ? AND (? = '' OR tenant = ?)`, id, tenant, tenant)
		if err != nil {
			return unavailable("delete webhook", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("sqlite: webhook %s: %w", id, store.ErrNotFound)
		}
		return nil
	})
}

// UpdateWebhookDelivery implements [store.Store].
func (s *Store) UpdateWebhookDelivery(ctx context.Context, p *store.WebhookDeliveryParams) error {
	return s.w.do(ctx, func(tx *wtx) error {
		res, err := tx.w.exec(`UPDATE webhooks SET cursor = max(cursor, ?1),
			last_delivered_at = CASE WHEN ?2 = 0 THEN last_delivered_at ELSE ?2 END,
			last_error = ?3, failures = ?4 WHERE id = ?5`,
			p.Cursor, t2i(p.LastDeliveredAt), p.LastError, p.Failures, p.ID)
		if err != nil {
			return unavailable("update webhook", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("sqlite: webhook %s: %w", p.ID, store.ErrNotFound)
		}
		return nil
	})
}
