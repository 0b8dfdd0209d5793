// Package client is the Go SDK of Gantry's HTTP API v1: submit and follow
// jobs and batches, page through them, stream their events, manage
// webhooks, queues and workers, and run Go workers against a remote server
// ([Client.WorkerTransport]).
//
//	c, err := client.FromEnv() // GANTRY_SERVER, GANTRY_TOKEN or ./gantry-data/admin.token
//	j, err := c.Submit(ctx, client.JobRequest{Type: "email.send", Params: msg})
//	j, err = c.Wait(ctx, j.ID)
//
// # Errors
//
// An error answer of the server is an *[Error] carrying its problem
// document (status, title, detail and the field at fault). It matches the
// sentinel of its status with errors.Is: [ErrInvalid] (400, 422),
// [ErrUnauthorized] (401), [ErrForbidden] (403), [ErrNotFound] (404),
// [ErrConflict] (409), [ErrTooLarge] (413), [ErrTooManyRequests] (429) and
// [ErrUnavailable] (503). Reads are retried a few times after a 503,
// honoring Retry-After; writes are not retried.
//
// # Lists and events
//
// Lists are iterators ([iter.Seq2]) that read pages as they go; each also
// has a single-page variant that returns the cursor of the next page.
// [Client.Events] streams events (Server-Sent Events) and resumes a broken
// stream after the last event received, so that no stored event is lost
// or repeated.
package client
