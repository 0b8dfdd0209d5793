package engine

// This file lists the engine's API as the server, the embedded package and
// the demo use it. Bodies live in the other files of the package.

import (
	"context"
	"time"

	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// BatchSpec is a batch to submit.
type BatchSpec struct {
	Tenant     string
	Name       string
	Jobs       []job.Spec
	Open       bool      // keep the batch open for more jobs
	OnComplete *job.Spec // enqueued once when the batch is done
}

// LeaseResult is the answer to [Engine.Lease].
type LeaseResult struct {
	Jobs []*job.Job
	TTL  time.Duration
	// Waited is how long the call waited (long poll) before the leases
	// were granted, measured on this process's monotonic clock. A worker
	// counts its leases' trust window from when it sent the request plus
	// Waited: counting from the send alone would make a lease granted
	// after a long wait look expired on arrival (RELIABILITY.md rule 3).
	Waited time.Duration
	Drain  bool
}

// HeartbeatResult is the answer to [Engine.Heartbeat].
type HeartbeatResult struct {
	Leases []store.HeartbeatResult
	Drain  bool
}

// API is the engine's surface, for documentation and compile-time checks.
type API interface {
	Submit(ctx context.Context, spec job.Spec) (j *job.Job, created bool, err error)
	SubmitBatch(ctx context.Context, b BatchSpec) (*job.Batch, []string, error)
	AddToBatch(ctx context.Context, tenant, batchID string, specs []job.Spec) ([]string, error)
	CloseBatch(ctx context.Context, tenant, batchID string) (*job.Batch, error)
	CancelBatch(ctx context.Context, tenant, batchID string) (*job.Batch, error)
	GetBatch(ctx context.Context, tenant, batchID string) (*job.Batch, error)
	ListBatches(ctx context.Context, p *store.ListBatchesParams) ([]*job.Batch, string, error)

	GetJob(ctx context.Context, tenant, id string) (*job.Job, error)
	ListJobs(ctx context.Context, p *store.ListJobsParams) ([]*job.Job, string, error)
	CancelJob(ctx context.Context, tenant, id string) (*job.Job, error)
	RetryJob(ctx context.Context, tenant, id string) (*job.Job, error)
	DeleteJob(ctx context.Context, tenant, id string) error
	// Wait blocks until the job is terminal and returns it.
	Wait(ctx context.Context, tenant, id string) (*job.Job, error)

	RegisterWorker(ctx context.Context, w *job.Worker) (*job.Worker, error)
	Lease(ctx context.Context, workerID string, max int, wait time.Duration) (LeaseResult, error)
	Heartbeat(ctx context.Context, workerID string, leases []store.HeartbeatLease) (HeartbeatResult, error)
	Report(ctx context.Context, workerID string, outcomes []store.Outcome) ([]store.FinishResult, error)
	DrainWorker(ctx context.Context, tenant, workerID string) (*job.Worker, error)
	RemoveWorker(ctx context.Context, tenant, workerID string) error
	ListWorkers(ctx context.Context, tenant string) ([]*job.Worker, error)

	PauseQueue(ctx context.Context, tenant, name string) (*job.Queue, error)
	ResumeQueue(ctx context.Context, tenant, name string) (*job.Queue, error)
	ListQueues(ctx context.Context, tenant string) ([]*job.Queue, error)

	AcquireReservation(ctx context.Context, tenant, name, holder string, ttl time.Duration) (*job.Reservation, error)
	RenewReservation(ctx context.Context, tenant, name, holder string, token int64, ttl time.Duration) (*job.Reservation, error)
	ReleaseReservation(ctx context.Context, tenant, name, holder string, token int64) error
	GetReservation(ctx context.Context, tenant, name string) (*job.Reservation, error)
	ListReservations(ctx context.Context, p ReservationListParams) ([]*job.Reservation, string, error)

	PutSchedule(ctx context.Context, s ScheduleSpec) (*job.Schedule, bool, error)
	GetSchedule(ctx context.Context, tenant, name string) (*job.Schedule, error)
	ListSchedules(ctx context.Context, p *store.ListSchedulesParams) ([]*job.Schedule, string, error)
	DeleteSchedule(ctx context.Context, tenant, name string) error
	PauseSchedule(ctx context.Context, tenant, name string) (*job.Schedule, error)
	ResumeSchedule(ctx context.Context, tenant, name string) (*job.Schedule, error)
	TriggerSchedule(ctx context.Context, tenant, name string) (*job.Job, error)

	// Subscribe follows events matching f with Seq > after (after < 0: only
	// new events from now on).
	Subscribe(ctx context.Context, f event.Filter, after int64) (*event.Subscription, error)
}
