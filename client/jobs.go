package client

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/wire"
)

// Submit submits a job and returns it as stored. If r.UniqueKey matches an
// unfinished job of the tenant, no job is created: that job is returned
// with [Job.Deduplicated] set.
func (c *Client) Submit(ctx context.Context, r JobRequest) (*Job, error) {
	body, err := r.wire("")
	if err != nil {
		return nil, fmt.Errorf("client: submit: %w", err)
	}
	var w wire.Job
	status, err := c.do(ctx, call{method: "POST", path: "/v1/jobs", body: &body, out: &w})
	if err != nil {
		return nil, err
	}
	j := fromWireJob(&w)
	j.Deduplicated = status == http.StatusOK
	return j, nil
}

func jobPath(id string, tail string) string {
	return "/v1/jobs/" + url.PathEscape(id) + tail
}

// GetJob returns a job with its attempts.
func (c *Client) GetJob(ctx context.Context, id string) (*Job, error) {
	return c.jobCall(ctx, "GET", jobPath(id, ""))
}

// CancelJob cancels a job: a scheduled, queued or retrying job becomes
// canceled at once; a running one gets CancelRequested, its worker is told
// and it ends canceled. Canceling a finished job is [ErrConflict].
func (c *Client) CancelJob(ctx context.Context, id string) (*Job, error) {
	return c.jobCall(ctx, "POST", jobPath(id, "/cancel"))
}

// RetryJob puts a failed or canceled job back in its queue with a fresh
// attempt budget; other states are [ErrConflict].
func (c *Client) RetryJob(ctx context.Context, id string) (*Job, error) {
	return c.jobCall(ctx, "POST", jobPath(id, "/retry"))
}

// DeleteJob deletes a finished job; other states are [ErrConflict].
func (c *Client) DeleteJob(ctx context.Context, id string) error {
	_, err := c.do(ctx, call{method: "DELETE", path: jobPath(id, "")})
	return err
}

func (c *Client) jobCall(ctx context.Context, method, path string) (*Job, error) {
	var w wire.Job
	if _, err := c.do(ctx, call{method: method, path: path, out: &w}); err != nil {
		return nil, err
	}
	return fromWireJob(&w), nil
}

// ListJobsOptions filter and page [Client.ListJobs]. Empty fields match
// all.
type ListJobsOptions struct {
	State   gantry.State
	Type    string
	Queue   string
	BatchID string
	Tag     string
	// Limit is the number of jobs per page: 1 to 1000. Defaults to the
	// server's (50).
	Limit int
	// Cursor starts the list at a page returned by [Client.ListJobsPage].
	Cursor string
}

func (o *ListJobsOptions) query(cursor string) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"state": string(o.State), "type": o.Type, "queue": o.Queue, "batch_id": o.BatchID, "tag": o.Tag} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return pageQuery(q, o.Limit, cursor)
}

// ListJobsPage returns one page of jobs, newest first, without their
// attempts.
func (c *Client) ListJobsPage(ctx context.Context, o ListJobsOptions) (Page[*Job], error) {
	return getPage(ctx, c, "/v1/jobs", o.query(o.Cursor), fromWireJob)
}

// ListJobs iterates over the jobs that match o, newest first, reading
// pages as it goes. An error ends the iteration after it is yielded.
func (c *Client) ListJobs(ctx context.Context, o ListJobsOptions) iter.Seq2[*Job, error] {
	return all(ctx, o.Cursor, func(ctx context.Context, cursor string) (Page[*Job], error) {
		return getPage(ctx, c, "/v1/jobs", o.query(cursor), fromWireJob)
	})
}

// Wait waits until the job is finished (succeeded, failed or canceled)
// and returns it with its attempts. It follows the job's events and falls
// back to polling when the event stream is not available; it returns
// early with ctx's error, or with [ErrNotFound] if the job is deleted.
func (c *Client) Wait(ctx context.Context, id string) (*Job, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribe first, so that no transition between the first read and the
	// stream is missed.
	sub, err := c.Events(ctx, EventsOptions{JobID: id})
	if err != nil {
		if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrForbidden) || ctx.Err() != nil {
			return nil, fmt.Errorf("client: wait for job %s: %w", id, err)
		}
		sub = nil
	}
	if sub != nil {
		defer sub.Close()
	}
	for {
		j, err := c.GetJob(ctx, id)
		if err != nil {
			return nil, err
		}
		if j.State.Terminal() {
			return j, nil
		}
		if !c.waitChange(ctx, &sub) {
			return nil, fmt.Errorf("client: wait for job %s: %w", id, ctx.Err())
		}
	}
}

// waitChange waits for an event that may have finished the job, or for the
// next poll; it drops *sub when the stream ends. False means ctx is done.
func (c *Client) waitChange(ctx context.Context, sub **Subscription) bool {
	if *sub == nil {
		return sleep(ctx, c.pollInterval)
	}
	t := time.NewTimer(c.safetyPoll)
	defer t.Stop()
	for {
		select {
		case e, ok := <-(*sub).C():
			if !ok {
				(*sub).Close()
				*sub = nil
				return ctx.Err() == nil
			}
			if e.State.Terminal() || e.Kind == EventSucceeded || e.Kind == EventFailed || e.Kind == EventCanceled {
				return true
			}
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
}
