package client

import (
	"context"
	"net/url"

	"github.com/gantryhq/gantry/internal/wire"
)

// ListQueues returns the queues with their counts.
func (c *Client) ListQueues(ctx context.Context) ([]*Queue, error) {
	return getList(ctx, c, "/v1/queues", fromWireQueue)
}

// PauseQueue pauses a tenant's queue: its jobs are leased no more until it
// is resumed; jobs already running go on. An empty tenant is the token's
// own ("default" for the admin token); only admin tokens may name another.
func (c *Client) PauseQueue(ctx context.Context, tenant, name string) (*Queue, error) {
	return c.queueCall(ctx, tenant, name, "/pause")
}

// ResumeQueue resumes a tenant's paused queue; tenant is as for
// [Client.PauseQueue].
func (c *Client) ResumeQueue(ctx context.Context, tenant, name string) (*Queue, error) {
	return c.queueCall(ctx, tenant, name, "/resume")
}

func (c *Client) queueCall(ctx context.Context, tenant, name, tail string) (*Queue, error) {
	var q url.Values
	if tenant != "" {
		q = url.Values{"tenant": {tenant}}
	}
	var w wire.Queue
	if _, err := c.do(ctx, call{method: "POST", path: "/v1/queues/" + url.PathEscape(name) + tail, query: q, out: &w}); err != nil {
		return nil, err
	}
	return fromWireQueue(&w), nil
}

// ListWorkers returns the registered workers, with the jobs each runs.
func (c *Client) ListWorkers(ctx context.Context) ([]*Worker, error) {
	return getList(ctx, c, "/v1/workers", fromWireWorker)
}

// DrainWorker asks a worker to drain: it is leased no more jobs, finishes
// those it runs and leaves.
func (c *Client) DrainWorker(ctx context.Context, id string) (*Worker, error) {
	var w wire.Worker
	if _, err := c.do(ctx, call{method: "POST", path: workerPath(id, "/drain"), out: &w}); err != nil {
		return nil, err
	}
	return fromWireWorker(&w), nil
}

// RemoveWorker removes a worker: the jobs it still runs go back to their
// queues at once, for other workers.
func (c *Client) RemoveWorker(ctx context.Context, id string) error {
	_, err := c.do(ctx, call{method: "DELETE", path: workerPath(id, "")})
	return err
}

func workerPath(id, tail string) string {
	return "/v1/workers/" + url.PathEscape(id) + tail
}

// Healthz checks that the server is up (GET /healthz).
func (c *Client) Healthz(ctx context.Context) error {
	_, err := c.do(ctx, call{method: "GET", path: "/healthz", once: true})
	return err
}

// Readyz checks that the server can serve requests: its store answers (GET
// /readyz). A server that is not ready is [ErrUnavailable].
func (c *Client) Readyz(ctx context.Context) error {
	_, err := c.do(ctx, call{method: "GET", path: "/readyz", once: true})
	return err
}
