// Package worker is Gantry's Go worker runtime: it leases jobs through a
// [Transport], runs them with registered [gantry.Handler]s, keeps their
// leases alive with batched heartbeats, and reports their outcomes in
// batches.
//
// One runtime serves both transports: the local one over an in-process
// engine (package embedded) and the remote one over the HTTP worker
// protocol (package client).
//
//	w := worker.New(transport, worker.Options{Name: "mailer", Concurrency: 20})
//	w.Register("email.send", sendEmail)
//	err := w.Run(ctx) // until ctx is done, then a graceful shutdown
//
// # Leases and the trust window
//
// Each job runs with a context that is canceled, with a distinct cause
// ([context.Cause]), when cancellation is requested ([ErrCancelRequested]),
// the lease is lost ([ErrLeaseLost]), the lease could not be renewed in
// time ([ErrLeaseExpired]), the job's timeout passes ([ErrTimeout]) or the
// worker shuts down after its grace period ([ErrShutdown]).
//
// The worker never compares server timestamps with its own clock. A lease is
// trusted for its TTL minus a margin (a tenth of the TTL, at least a second,
// at most a quarter of the TTL), counted on the monotonic clock from when
// the lease or the last successful renewal was requested. When that trust
// window passes without a successful renewal, the job's context is canceled
// even if the server cannot be reached, so that the job stops before the
// server may give it to another worker.
//
// # Outcomes
//
// A handler's return values become the attempt's outcome:
//   - a nil error: succeeded, with the result marshaled to JSON (a result
//     that cannot be marshaled fails the job without retry);
//   - an error: failed, retried with backoff unless [gantry.Permanent], after
//     the delay of [gantry.RetryAfter] if set;
//   - an error after cancellation was requested: canceled;
//   - an error after the job's timeout: failed, retryable, "timeout after …";
//   - a panic: failed, retryable, with the panic value and stack; the worker
//     keeps running.
//
// Nothing is reported for a job whose lease was lost or whose trust window
// passed (the attempt is no longer the worker's), nor for a job canceled by
// shutdown with an error: leaving the worker releases it to other workers
// at once.
package worker
