// Package store is the seam between the engine and a database: one [Store]
// interface that every engine (SQLite, PostgreSQL) implements and that one
// conformance suite (package storetest) checks.
//
// The store applies the job state machine's transitions atomically and
// emits their events in the same transaction; the engine decides policy
// (backoff, TTLs, when to run maintenance). Every method takes the current
// time explicitly, so tests control time. Methods that take a tenant treat
// "" as "any tenant" (an admin), and report another tenant's object as
// [ErrNotFound].
package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
)

// Errors a store returns, wrapped with context; test them with errors.Is.
var (
	// ErrNotFound: no such job, batch, worker or queue (or another tenant's).
	ErrNotFound = errors.New("store: not found")
	// ErrConflict: the object is in a state that forbids the operation
	// (a terminal job canceled, a closed batch extended, a running job deleted).
	ErrConflict = errors.New("store: conflict")
	// ErrUnavailable: the database cannot be reached or failed; the
	// operation may or may not have been applied only where documented.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrInvalidCursor: a page cursor that this store did not make.
	ErrInvalidCursor = errors.New("store: invalid cursor")
)

// Store is what the engine needs of a database. Implementations are safe for
// concurrent use; concurrent calls may share one transaction (group commit),
// but each call is atomic on its own: it applies whole or not at all.
type Store interface {
	// InsertJobs inserts p.Jobs (records from job.NewFromSpec, IDs set) in
	// one transaction, all or nothing, and emits job.submitted for each
	// created job. A job whose UniqueKey matches a non-terminal job of the
	// same tenant (stored, or earlier in p.Jobs) is not created: its result
	// is that job with Created false. If p.NewBatch is set the batch is
	// created in the same transaction; if p.AddToBatch is set every job
	// joins that existing batch, which must be the tenant's (else
	// ErrNotFound) and open (else ErrConflict).
	InsertJobs(ctx context.Context, p *InsertJobsParams) ([]InsertResult, error)

	// GetJob returns a job with its attempts.
	GetJob(ctx context.Context, tenant, id string) (*job.Job, error)
	// ListJobs returns a page of jobs, newest first, and the cursor of the
	// next page ("" at the end). Attempts are not filled.
	ListJobs(ctx context.Context, p *ListJobsParams) ([]*job.Job, string, error)
	// DeleteJob deletes a terminal job (ErrConflict otherwise).
	DeleteJob(ctx context.Context, tenant, id string) error
	// CancelJob cancels a scheduled, queued or retrying job at once (event
	// job.canceled) and sets CancelRequested on a running one (no event: it
	// ends canceled when its worker reports). A terminal job is ErrConflict.
	CancelJob(ctx context.Context, tenant, id string, now time.Time) (*job.Job, error)
	// RetryJob puts a failed or canceled job back to queued with a fresh
	// attempt budget (event job.queued); other states are ErrConflict.
	RetryJob(ctx context.Context, tenant, id string, now time.Time) (*job.Job, error)

	// LeaseJobs leases up to p.Max queued jobs to a worker, highest priority
	// first, then oldest: each becomes running with Attempt+1, a new fencing
	// token greater than any token the job had, LeaseExpiresAt = Now+TTL and
	// a new running entry in Attempts (event job.started). Jobs of paused
	// queues are never leased; nor is a job whose SingletonKey is held by a
	// running job of its tenant (nor two with one key in one call).
	// Concurrent calls never lease the same job.
	LeaseJobs(ctx context.Context, p *LeaseJobsParams) ([]*job.Job, error)
	// HeartbeatJobs extends the leases that are still current (state running
	// and token equal, and held by p.WorkerID when it is set) by each job's
	// own lease TTL, records progress, and
	// reports cancellation requests. A stale lease gets OK false and changes
	// nothing. Results are in the order of p.Leases.
	HeartbeatJobs(ctx context.Context, p *HeartbeatJobsParams) ([]HeartbeatResult, error)
	// FinishJobs records attempts' outcomes; see [Outcome]. An outcome whose
	// lease is not current (state running and token equal) gets OK false and
	// changes nothing. Results are in the order of p.Outcomes. A batch whose
	// last job turns terminal is done when FinishJobs returns: marked in the
	// same transaction, or in one right after it where finishers of one
	// batch running at once would otherwise queue on the batch (a crash in
	// between leaves the batch to [Store.SettleBatches]).
	FinishJobs(ctx context.Context, p *FinishJobsParams) ([]FinishResult, error)

	// SettleBatches marks done, as a job ending would, up to limit closed
	// batches that are not done although every job of theirs is terminal
	// (left so by a server that crashed between ending a batch's last job
	// and marking the batch). It returns how many it marked.
	SettleBatches(ctx context.Context, now time.Time, limit int) (int, error)

	// RescueExpired ends running jobs whose lease expired, as a
	// compare-and-swap on (id, token, state) so a renewal racing it wins or
	// loses whole: the attempt is recorded as "expired", with an error
	// saying which worker was lost (also set as the job's Error), and the job becomes
	// queued (event job.retrying with state queued), canceled if
	// cancellation was requested, or failed if its attempts are exhausted. A
	// lease is expired when LeaseExpiresAt <= Now and Now-UpSince >= the
	// lease's own TTL (the startup grace). It returns the jobs it changed.
	RescueExpired(ctx context.Context, p *RescueParams) ([]*job.Job, error)
	// PromoteDue makes scheduled and retrying jobs whose RunAt <= now queued
	// (event job.queued), at most limit of them, and returns how many it
	// promoted and the earliest RunAt still pending (zero if none).
	PromoteDue(ctx context.Context, now time.Time, limit int) (int, time.Time, error)

	// GetBatch returns a batch with its counts.
	GetBatch(ctx context.Context, tenant, id string) (*job.Batch, error)
	// ListBatches returns a page of batches, newest first, with counts.
	ListBatches(ctx context.Context, p *ListBatchesParams) ([]*job.Batch, string, error)
	// CloseBatch closes an open batch (closing a closed one is a no-op);
	// if all its jobs are terminal it becomes done at once.
	CloseBatch(ctx context.Context, tenant, id string, now time.Time) (*job.Batch, error)
	// CancelBatch closes the batch and cancels its jobs as CancelJob would.
	CancelBatch(ctx context.Context, tenant, id string, now time.Time) (*job.Batch, error)

	// RegisterWorker stores a new worker (ID set by the caller).
	RegisterWorker(ctx context.Context, w *job.Worker) error
	// GetWorker returns a worker with the jobs it holds.
	GetWorker(ctx context.Context, id string) (*job.Worker, error)
	// LookupWorker returns a worker as GetWorker does but without the jobs
	// it holds (Running 0, JobIDs nil, IdleSince as stored): what leasing
	// and heartbeats need, read often, without looking through the
	// running jobs.
	LookupWorker(ctx context.Context, id string) (*job.Worker, error)
	// ListWorkers returns the workers of a tenant ("" all), oldest first,
	// with the jobs each holds. State is stored active or draining; the
	// engine reports lost from LastSeen.
	ListWorkers(ctx context.Context, tenant string) ([]*job.Worker, error)
	// DrainWorker marks a worker draining: it is leased nothing more.
	DrainWorker(ctx context.Context, id string, now time.Time) (*job.Worker, error)
	// DeleteWorker removes a worker and releases its running jobs back to
	// queued at once (attempt outcome "released", which does not count
	// against the attempt budget). It returns the released jobs.
	DeleteWorker(ctx context.Context, id string, now time.Time) ([]*job.Job, error)
	// PruneWorkers deletes workers not seen since before that hold no job.
	PruneWorkers(ctx context.Context, before time.Time) (int, error)

	// SetQueuePaused pauses or resumes a tenant's queue (creating its
	// record if needed). Paused queues lease nothing.
	SetQueuePaused(ctx context.Context, tenant, name string, paused bool) (*job.Queue, error)
	// ListQueues returns a tenant's ("" all) queues, by tenant then name,
	// with counts by state.
	ListQueues(ctx context.Context, tenant string) ([]*job.Queue, error)

	// ReadEvents returns up to limit events with Seq > after, in Seq order.
	ReadEvents(ctx context.Context, after int64, limit int) ([]job.Event, error)
	// EventBounds returns the Seq of the oldest retained event and of the
	// newest event (0, 0 when none was ever written; after retention
	// removed them all, oldest is newest+1).
	EventBounds(ctx context.Context) (oldest, newest int64, err error)

	// InsertWebhook stores a new webhook (ID, Secret and Cursor set by the
	// caller).
	InsertWebhook(ctx context.Context, w *job.Webhook) error
	// GetWebhook returns a webhook.
	GetWebhook(ctx context.Context, tenant, id string) (*job.Webhook, error)
	// ListWebhooks returns a tenant's ("" all) webhooks, oldest first.
	ListWebhooks(ctx context.Context, tenant string) ([]*job.Webhook, error)
	// DeleteWebhook deletes a webhook.
	DeleteWebhook(ctx context.Context, tenant, id string) error
	// UpdateWebhookDelivery records delivery progress: the new cursor (which
	// never moves backwards: a smaller one is ignored), and the status. An
	// unknown (or deleted) webhook is ErrNotFound.
	UpdateWebhookDelivery(ctx context.Context, p *WebhookDeliveryParams) error

	// Retain deletes terminal jobs finished before p.JobsBefore, done
	// batches finished before it, and events before p.EventsBefore, at most
	// p.Limit jobs per call.
	Retain(ctx context.Context, p *RetainParams) (RetainResult, error)

	// AcquireReservation grants the name p.Name of tenant p.Tenant to
	// p.Holder until p.Now+p.TTL. A name that is free (never held,
	// released, or expired at p.Now) is granted with a new token, greater
	// than every token this store ever issued (for any name, and for job
	// leases); the expired grant's history entry ends "expired". A name held
	// by p.Holder and unexpired is extended, keeping its token. A name held
	// by another holder and unexpired is a *[HeldError] (which wraps
	// ErrConflict) naming that holder and its expiry; nothing changes.
	// Expiry is decided with p.Now only (the server's clock): a grant is
	// expired when ExpiresAt <= Now. The result carries no History.
	AcquireReservation(ctx context.Context, p *AcquireReservationParams) (*job.Reservation, error)
	// RenewReservation extends a grant to p.Now+p.TTL, as a compare-and-swap
	// on (tenant, name, holder, token, unexpired at p.Now); otherwise it is
	// ErrConflict and nothing changes. The result carries no History.
	RenewReservation(ctx context.Context, p *RenewReservationParams) (*job.Reservation, error)
	// ReleaseReservation frees a grant, as a compare-and-swap on (tenant,
	// name, holder, token, unexpired at p.Now); its history entry ends
	// "released". Otherwise it is ErrConflict and nothing changes.
	ReleaseReservation(ctx context.Context, p *ReleaseReservationParams) error
	// GetReservation returns a tenant's reservation as of now: the current
	// holder (empty holder fields if free or expired) and History, the last
	// job.ReservationHistoryLen grants, newest first, each ended "released",
	// "expired" (EndedAt = its expiry) or "held". A name never acquired is
	// ErrNotFound. Tenant "" is a namespace of its own here (the engine's).
	GetReservation(ctx context.Context, tenant, name string, now time.Time) (*job.Reservation, error)
	// ListReservations returns a tenant's ("" all tenants') reservations
	// as of now, by tenant then name, without History.
	ListReservations(ctx context.Context, tenant string, now time.Time) ([]*job.Reservation, error)

	// PutSchedule creates or replaces the schedule (s.Tenant, s.Name) and
	// returns it as stored, and whether it was created. The store sets
	// Version (1, or the old one plus 1) and keeps CreatedAt, LastRunAt,
	// LastJobID, Skipped and LastSkippedAt of a replaced schedule; it keeps
	// the old NextRunAt where [KeepNextRun] says so, else stores s's.
	PutSchedule(ctx context.Context, s *job.Schedule) (*job.Schedule, bool, error)
	// GetSchedule returns a tenant's schedule (tenant is required here).
	GetSchedule(ctx context.Context, tenant, name string) (*job.Schedule, error)
	// ListSchedules returns a page of a tenant's ("" all) schedules, by
	// tenant then name.
	ListSchedules(ctx context.Context, p *ListSchedulesParams) ([]*job.Schedule, string, error)
	// DeleteSchedule deletes a schedule; the jobs it enqueued stay.
	DeleteSchedule(ctx context.Context, tenant, name string) error
	// SetSchedulePaused pauses a schedule (NextRunAt becomes zero) or
	// resumes a paused one (NextRunAt becomes p.NextRunAt), bumping its
	// Version; pausing a paused or resuming a running schedule changes
	// nothing.
	SetSchedulePaused(ctx context.Context, p *PauseScheduleParams) (*job.Schedule, error)
	// DueSchedules returns up to limit unpaused schedules whose NextRunAt
	// <= now, earliest first, and the earliest NextRunAt after now (zero
	// if none).
	DueSchedules(ctx context.Context, now time.Time, limit int) ([]*job.Schedule, time.Time, error)
	// FireSchedule enqueues p.Job for a schedule in one transaction, as a
	// compare-and-swap; see [FireScheduleParams].
	FireSchedule(ctx context.Context, p *FireScheduleParams) (FireResult, error)

	// OnChange registers f to be called after commits that made jobs
	// leasable or appended events (for shared stores: on any process, as a
	// best-effort hint). f must not block.
	OnChange(f func(Change))
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close releases the store's resources; pending calls fail with ErrClosed.
	Close() error
}

// Change is a hint passed to [Store.OnChange] callbacks.
type Change struct {
	// JobsAvailable: jobs may have become leasable.
	JobsAvailable bool
	// LastSeq is the newest event sequence committed, if events were appended.
	LastSeq int64
	// Events, when not nil, are the events a commit of this process
	// appended, numbered, exactly as ReadEvents returns them: a follower
	// of the log whose cursor is just before the first of them may take
	// them instead of reading the store. Stores may leave it nil.
	Events []job.Event
}

// InsertJobsParams are the arguments of [Store.InsertJobs].
type InsertJobsParams struct {
	Now        time.Time
	Jobs       []*job.Job
	NewBatch   *job.Batch
	AddToBatch string
}

// InsertResult is one job's fate in [Store.InsertJobs].
type InsertResult struct {
	Job     *job.Job
	Created bool
}

// ListJobsParams filter and page [Store.ListJobs]. Empty fields match all.
type ListJobsParams struct {
	Tenant  string
	State   gantry.State
	Type    string
	Queue   string
	BatchID string
	Tag     string
	Limit   int    // 1..1000
	Cursor  string // from a previous page; "" for the first
}

// ListBatchesParams page [Store.ListBatches].
type ListBatchesParams struct {
	Tenant string
	Limit  int
	Cursor string
}

// LeaseJobsParams are the arguments of [Store.LeaseJobs].
type LeaseJobsParams struct {
	Now      time.Time
	WorkerID string
	Tenant   string   // "" leases any tenant's jobs
	Queues   []string // empty: every queue
	Types    []string // empty: every type
	Max      int
	TTL      time.Duration
}

// HeartbeatLease is one lease renewed by [Store.HeartbeatJobs].
type HeartbeatLease struct {
	JobID    string
	Token    int64
	Progress *job.Progress // nil: unchanged
}

// HeartbeatJobsParams are the arguments of [Store.HeartbeatJobs].
type HeartbeatJobsParams struct {
	Now      time.Time
	WorkerID string
	Leases   []HeartbeatLease
}

// HeartbeatResult is one lease's renewal.
type HeartbeatResult struct {
	JobID           string
	OK              bool
	ExpiresAt       time.Time
	CancelRequested bool
	Job             *job.Job // the job as renewed, when OK (no attempts)
}

// Outcome is a worker's report of one attempt:
//   - succeeded: the job becomes succeeded with Result (event
//     job.succeeded) — or canceled, keeping Result, if cancellation was
//     requested (a canceled job ends canceled, API.md);
//   - canceled: the job becomes canceled (event job.canceled);
//   - failed: if Retryable, the job's attempts are not exhausted and no
//     cancellation was requested, it becomes retrying with RunAt = Now +
//     RetryAfter (or Backoff(attempt) when RetryAfter is zero) (event
//     job.retrying); with cancellation requested it becomes canceled;
//     otherwise failed (event job.failed).
type Outcome struct {
	JobID      string
	Token      int64
	Outcome    string // job.OutcomeSucceeded, OutcomeFailed or OutcomeCanceled
	Result     json.RawMessage
	Error      string
	Retryable  bool
	RetryAfter time.Duration
}

// FinishJobsParams are the arguments of [Store.FinishJobs].
type FinishJobsParams struct {
	Now time.Time
	// WorkerID, when set, is the worker reporting: an outcome for a lease
	// another worker holds is stale (OK false), whatever its token.
	WorkerID string
	Outcomes []Outcome
	// Backoff gives the delay before attempt n+1 after attempt n failed.
	Backoff func(attempt int) time.Duration
}

// FinishResult is one outcome's fate.
type FinishResult struct {
	JobID string
	OK    bool
	Job   *job.Job // the job after the transition, when OK (no attempts)
}

// RescueParams are the arguments of [Store.RescueExpired].
type RescueParams struct {
	Now     time.Time
	UpSince time.Time
	Limit   int
}

// WebhookDeliveryParams are the arguments of [Store.UpdateWebhookDelivery].
type WebhookDeliveryParams struct {
	ID              string
	Cursor          int64
	LastDeliveredAt time.Time // zero: unchanged
	LastError       string
	Failures        int
}

// RetainParams are the arguments of [Store.Retain].
type RetainParams struct {
	JobsBefore   time.Time
	EventsBefore time.Time
	Limit        int
}

// RetainResult counts what [Store.Retain] deleted.
type RetainResult struct {
	Jobs, Batches, Events int
}

// AcquireReservationParams are the arguments of [Store.AcquireReservation].
type AcquireReservationParams struct {
	Tenant string // names are per tenant; "" is the engine's own namespace
	Name   string
	Holder string
	TTL    time.Duration
	Now    time.Time
}

// RenewReservationParams are the arguments of [Store.RenewReservation].
type RenewReservationParams struct {
	Tenant string
	Name   string
	Holder string
	Token  int64
	TTL    time.Duration
	Now    time.Time
}

// ReleaseReservationParams are the arguments of [Store.ReleaseReservation].
type ReleaseReservationParams struct {
	Tenant string
	Name   string
	Holder string
	Token  int64
	Now    time.Time
}

// HeldError is the error of [Store.AcquireReservation] when another holder
// holds the name: it names that holder and when its grant expires, and
// wraps [ErrConflict].
type HeldError struct {
	Holder    string
	ExpiresAt time.Time
}

// Error implements error.
func (e *HeldError) Error() string {
	return "store: reservation held by " + e.Holder + " until " + e.ExpiresAt.UTC().Format(time.RFC3339Nano)
}

// Unwrap returns [ErrConflict].
func (e *HeldError) Unwrap() error { return ErrConflict }

// CheckReservation validates the fields every reservation call needs: a
// name, a holder and (when acquiring or renewing) a positive TTL.
func CheckReservation(name, holder string, ttl time.Duration, needTTL bool) error {
	switch {
	case name == "":
		return errors.New("store: reservation name is empty")
	case holder == "":
		return errors.New("store: reservation holder is empty")
	case needTTL && ttl <= 0:
		return errors.New("store: reservation TTL must be positive")
	}
	return nil
}
