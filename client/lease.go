package client

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gantryhq/gantry/internal/wire"
)

// The per-job calls of the worker protocol, for programs that lease jobs
// themselves. Go workers need none of them: [Client.WorkerTransport]
// batches heartbeats and outcomes for all the jobs a worker runs.

// HeartbeatJob renews the lease with the given token on a running job and
// reports its progress (nil: unchanged). It returns whether cancellation
// of the job was requested. A stale token is [ErrConflict]: the lease is
// lost and the job must stop.
func (c *Client) HeartbeatJob(ctx context.Context, id string, token int64, progress *Progress) (cancelRequested bool, err error) {
	body := wire.JobHeartbeatRequest{Token: token}
	if progress != nil {
		body.Progress = &wire.Progress{Percent: progress.Percent, Message: progress.Message}
	}
	var w wire.HeartbeatResult
	if _, err := c.do(ctx, call{method: "POST", path: jobPath(id, "/heartbeat"), body: &body, out: &w}); err != nil {
		return false, err
	}
	return w.CancelRequested, nil
}

// CompleteJob records the success of the attempt with the given lease
// token, with its result marshaled to JSON (a json.RawMessage is sent as
// is; nil for none), and returns the job. A stale token is [ErrConflict]
// and changes nothing.
func (c *Client) CompleteJob(ctx context.Context, id string, token int64, result any) (*Job, error) {
	body := wire.JobCompleteRequest{Token: token}
	switch r := result.(type) {
	case nil:
	case json.RawMessage:
		body.Result = r
	default:
		b, err := json.Marshal(r)
		if err != nil {
			return nil, fmt.Errorf("client: complete job %s: %w: result cannot be marshaled to JSON: %w", id, ErrInvalid, err)
		}
		body.Result = b
	}
	return c.finishJob(ctx, id, "/complete", &body)
}

// Failure is how an attempt failed, for [Client.FailJob].
type Failure struct {
	// Error says what went wrong.
	Error string
	// Permanent fails the job at once, whatever attempts it has left.
	Permanent bool
	// RetryAfter, if positive, is the delay before the next attempt
	// instead of the server's backoff.
	RetryAfter time.Duration
}

// FailJob records the failure of the attempt with the given lease token
// and returns the job: retrying, or failed when it has no attempt left or
// the failure is permanent. A stale token is [ErrConflict] and changes
// nothing.
func (c *Client) FailJob(ctx context.Context, id string, token int64, f Failure) (*Job, error) {
	retryable := !f.Permanent
	body := wire.JobFailRequest{Token: token, Error: f.Error, Retryable: &retryable}
	if f.RetryAfter > 0 {
		s := wire.S(f.RetryAfter)
		body.RetryAfterSeconds = &s
	}
	return c.finishJob(ctx, id, "/fail", &body)
}

func (c *Client) finishJob(ctx context.Context, id, tail string, body any) (*Job, error) {
	var w wire.Job
	if _, err := c.do(ctx, call{method: "POST", path: jobPath(id, tail), body: body, out: &w}); err != nil {
		return nil, err
	}
	return fromWireJob(&w), nil
}
