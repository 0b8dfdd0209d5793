package client

import (
	"context"
	"fmt"
	"iter"
	"net/url"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/wire"
)

func batchPath(id string, tail string) string {
	return "/v1/batches/" + url.PathEscape(id) + tail
}

// CreateBatch submits a batch of jobs, all or nothing: if one job is
// invalid none is submitted, and the error's field names it
// ("jobs[3].type").
func (c *Client) CreateBatch(ctx context.Context, r BatchRequest) (*BatchCreated, error) {
	jobs, err := wireJobs(r.Jobs, "jobs")
	if err != nil {
		return nil, fmt.Errorf("client: create batch: %w", err)
	}
	body := wire.BatchRequest{Name: r.Name, Tenant: r.Tenant, Jobs: jobs, Open: r.Open}
	if r.OnComplete != nil {
		oc, err := r.OnComplete.wire("on_complete.")
		if err != nil {
			return nil, fmt.Errorf("client: create batch: %w", err)
		}
		body.OnComplete = &oc
	}
	var w wire.BatchCreated
	if _, err := c.do(ctx, call{method: "POST", path: "/v1/batches", body: &body, out: &w}); err != nil {
		return nil, err
	}
	return &BatchCreated{Batch: fromWireBatch(&w.Batch), JobIDs: w.JobIDs}, nil
}

// AddToBatch submits more jobs to an open batch, all or nothing, and
// returns their IDs. A closed batch is [ErrConflict].
func (c *Client) AddToBatch(ctx context.Context, batchID string, jobs []JobRequest) ([]string, error) {
	wj, err := wireJobs(jobs, "jobs")
	if err != nil {
		return nil, fmt.Errorf("client: add to batch: %w", err)
	}
	var w wire.JobIDs
	if _, err := c.do(ctx, call{method: "POST", path: batchPath(batchID, "/jobs"), body: &wire.BatchJobsRequest{Jobs: wj}, out: &w}); err != nil {
		return nil, err
	}
	return w.JobIDs, nil
}

// GetBatch returns a batch with its counts.
func (c *Client) GetBatch(ctx context.Context, id string) (*Batch, error) {
	return c.batchCall(ctx, "GET", batchPath(id, ""))
}

// CloseBatch closes an open batch (closing a closed one changes nothing):
// it takes no more jobs and is done once they are all finished.
func (c *Client) CloseBatch(ctx context.Context, id string) (*Batch, error) {
	return c.batchCall(ctx, "POST", batchPath(id, "/close"))
}

// CancelBatch closes a batch and cancels its unfinished jobs as
// [Client.CancelJob] would.
func (c *Client) CancelBatch(ctx context.Context, id string) (*Batch, error) {
	return c.batchCall(ctx, "POST", batchPath(id, "/cancel"))
}

func (c *Client) batchCall(ctx context.Context, method, path string) (*Batch, error) {
	var w wire.Batch
	if _, err := c.do(ctx, call{method: method, path: path, out: &w}); err != nil {
		return nil, err
	}
	return fromWireBatch(&w), nil
}

// ListBatchesOptions page [Client.ListBatches].
type ListBatchesOptions struct {
	// Limit is the number of batches per page: 1 to 1000. Defaults to the
	// server's (50).
	Limit int
	// Cursor starts the list at a page returned by [Client.ListBatchesPage].
	Cursor string
}

// ListBatchesPage returns one page of batches, newest first.
func (c *Client) ListBatchesPage(ctx context.Context, o ListBatchesOptions) (Page[*Batch], error) {
	return getPage(ctx, c, "/v1/batches", pageQuery(url.Values{}, o.Limit, o.Cursor), fromWireBatch)
}

// ListBatches iterates over the batches, newest first, reading pages as it
// goes. An error ends the iteration after it is yielded.
func (c *Client) ListBatches(ctx context.Context, o ListBatchesOptions) iter.Seq2[*Batch, error] {
	return all(ctx, o.Cursor, func(ctx context.Context, cursor string) (Page[*Batch], error) {
		return getPage(ctx, c, "/v1/batches", pageQuery(url.Values{}, o.Limit, cursor), fromWireBatch)
	})
}

// ListBatchJobsOptions filter and page [Client.ListBatchJobs].
type ListBatchJobsOptions struct {
	// State, if set, selects the jobs in that state.
	State gantry.State
	// Limit is the number of jobs per page: 1 to 1000. Defaults to the
	// server's (50).
	Limit int
	// Cursor starts the list at a page returned by
	// [Client.ListBatchJobsPage].
	Cursor string
}

func (o *ListBatchJobsOptions) query(cursor string) url.Values {
	q := url.Values{}
	if o.State != "" {
		q.Set("state", string(o.State))
	}
	return pageQuery(q, o.Limit, cursor)
}

// ListBatchJobsPage returns one page of a batch's jobs, newest first.
func (c *Client) ListBatchJobsPage(ctx context.Context, batchID string, o ListBatchJobsOptions) (Page[*Job], error) {
	return getPage(ctx, c, batchPath(batchID, "/jobs"), o.query(o.Cursor), fromWireJob)
}

// ListBatchJobs iterates over a batch's jobs, newest first, reading pages
// as it goes. An error ends the iteration after it is yielded.
func (c *Client) ListBatchJobs(ctx context.Context, batchID string, o ListBatchJobsOptions) iter.Seq2[*Job, error] {
	return all(ctx, o.Cursor, func(ctx context.Context, cursor string) (Page[*Job], error) {
		return getPage(ctx, c, batchPath(batchID, "/jobs"), o.query(cursor), fromWireJob)
	})
}
