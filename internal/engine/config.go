package engine

import (
	"log/slog"
	"math"
	"math/rand/v2"
	"time"

	"github.com/gantryhq/gantry/internal/job"
)

// Bounds of a lease TTL, whether configured or asked for by a worker.
const (
	MinLeaseTTL = time.Second
	MaxLeaseTTL = time.Hour
)

// MaxLease is the most jobs one [Engine.Lease] call returns.
const MaxLease = 1000

// maintenanceLimit bounds the rows one maintenance store call handles; a
// loop calls again at once while a call hits it.
const maintenanceLimit = 1000

// workerCacheTTL is how long a worker read from the store is trusted
// before it is read again (so that another server's drain is noticed).
const workerCacheTTL = 5 * time.Second

// waitRecheck is how often [Engine.Wait] reads the job even without an
// event, in case a hint was missed.
const waitRecheck = 5 * time.Second

// Config configures an [Engine]. Zero fields take their defaults.
type Config struct {
	// LeaseTTL is the lease TTL of a worker that does not ask for its own;
	// workers may ask for any TTL from MinLeaseTTL to MaxLeaseTTL. It is
	// clamped to that range. Defaults to 30s.
	LeaseTTL time.Duration
	// HeartbeatInterval is how often a worker with the default LeaseTTL is
	// told to heartbeat; a worker with its own TTL gets the same fraction
	// of it (see [Engine.HeartbeatInterval]). Defaults to LeaseTTL/3.
	HeartbeatInterval time.Duration
	// Backoff is the delay policy between failed attempts. Its zero value
	// is the default: exponential from 1s, factor 2, at most 1h, ±20%
	// jitter.
	Backoff Backoff
	// RescueInterval is how often expired leases are rescued. Defaults to 1s.
	RescueInterval time.Duration
	// PromoteInterval is how often scheduled and retrying jobs are checked
	// for being due, besides waking at the earliest due time the store
	// reports. Defaults to 1s.
	PromoteInterval time.Duration
	// CronInterval is how often the maintenance leader looks for due
	// schedules besides waking at the earliest next run it knows of: a
	// schedule put through another server is seen within it. Defaults to
	// 1s.
	CronInterval time.Duration
	// RetentionInterval is how often old jobs, batches and events are
	// deleted and lost workers pruned. Defaults to 1m.
	RetentionInterval time.Duration
	// JobRetention is how long terminal jobs and done batches are kept
	// after they finish. Defaults to 7 days.
	JobRetention time.Duration
	// EventRetention is how long events are kept: the window in which a
	// subscriber can resume. Defaults to 1h.
	EventRetention time.Duration
	// WorkerLostAfter is how long a worker may go unseen before it is
	// reported lost (and refused leases: it must register again). A worker
	// whose own lease TTL is longer gets that TTL instead. Defaults to 3
	// HeartbeatIntervals (30s with the default lease TTL).
	WorkerLostAfter time.Duration
	// WorkerRetention is how long a lost worker that holds no job is kept
	// before it is deleted. Defaults to 1h.
	WorkerRetention time.Duration
	// LeasePollInterval is how often a waiting [Engine.Lease] call tries
	// again without a hint that jobs are available. Defaults to 5s.
	LeasePollInterval time.Duration
	// MaxLeaseWait bounds how long one [Engine.Lease] call waits. Defaults
	// to 5m.
	MaxLeaseWait time.Duration
	// Limits bound what a job spec may hold. The zero value means
	// job.DefaultLimits.
	Limits job.Limits
	// MaxBatch bounds the jobs of one batch request, and the leases or
	// outcomes of one heartbeat or report. Defaults to 10000.
	MaxBatch int
	// EventPollInterval is how often the event hub reads the store without
	// a hint. Defaults to 1s.
	EventPollInterval time.Duration
	// EventBuffer is the number of events a subscription buffers for a
	// slow reader before it falls back to reading the store. Defaults to
	// 256.
	EventBuffer int
	// Leader reports whether this server runs the maintenance loops
	// (promote, cron, rescue, retention, worker pruning) at the moment. With
	// several servers on one database it is the seam for leader election.
	// Defaults to always true, or, with Elect, to this engine holding the
	// LeaderReservation.
	Leader func() bool
	// Elect makes an engine whose Leader is nil elect the maintenance
	// leader among the engines sharing its store, with the reservation
	// LeaderReservation: set it when several servers share one database.
	Elect bool
	// LeaderTTL is the TTL of the leader's reservation, with Elect: a dead
	// leader is replaced within LeaderTTL plus LeaderTTL/3 (the renewal
	// interval). At least 1s (smaller values are raised). Defaults to 15s.
	LeaderTTL time.Duration
	// LeaderID names this engine as the reservation's holder, with Elect.
	// Defaults to a random id.
	LeaderID string
	// Clock returns the current time. Defaults to time.Now.
	Clock func() time.Time
	// Logger receives maintenance errors. Defaults to slog.Default().
	Logger *slog.Logger
}

// withDefaults returns c with its zero fields set and its values clamped.
func (c Config) withDefaults() Config {
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 30 * time.Second
	}
	c.LeaseTTL = clampTTL(c.LeaseTTL)
	if c.HeartbeatInterval <= 0 || c.HeartbeatInterval >= c.LeaseTTL {
		c.HeartbeatInterval = c.LeaseTTL / 3
	}
	c.Backoff = c.Backoff.withDefaults()
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.RescueInterval, time.Second)
	def(&c.PromoteInterval, time.Second)
	def(&c.CronInterval, time.Second)
	def(&c.RetentionInterval, time.Minute)
	def(&c.JobRetention, 7*24*time.Hour)
	def(&c.EventRetention, time.Hour)
	def(&c.WorkerLostAfter, 3*c.HeartbeatInterval)
	def(&c.WorkerRetention, time.Hour)
	def(&c.LeasePollInterval, 5*time.Second)
	def(&c.MaxLeaseWait, 5*time.Minute)
	def(&c.EventPollInterval, time.Second)
	if c.MaxBatch <= 0 {
		c.MaxBatch = 10000
	}
	if c.EventBuffer <= 0 {
		c.EventBuffer = 256
	}
	if c.LeaderTTL <= 0 {
		c.LeaderTTL = defaultLeaderTTL
	}
	c.LeaderTTL = max(c.LeaderTTL, time.Second)
	if c.Elect && c.LeaderID == "" {
		c.LeaderID = randomLeaderID()
	}
	if c.Leader == nil && !c.Elect {
		c.Leader = func() bool { return true }
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func clampTTL(d time.Duration) time.Duration {
	return min(max(d, MinLeaseTTL), MaxLeaseTTL)
}

// Jitter is how [Backoff] randomizes its delays.
type Jitter int

// Jitter modes.
const (
	// JitterProportional spreads the delay d uniformly over
	// d ± JitterFraction·d. The default.
	JitterProportional Jitter = iota
	// JitterFull picks the delay uniformly in [0, d).
	JitterFull
	// JitterEqual picks the delay uniformly in [d/2, d).
	JitterEqual
	// JitterNone uses d as is.
	JitterNone
)

// Backoff is an exponential backoff policy: attempt n waits
// Base·Factor^(n-1), at most Max, randomized by Jitter. Its zero value is
// the default policy.
type Backoff struct {
	// Base is the delay after the first failed attempt. Defaults to 1s.
	Base time.Duration
	// Factor multiplies the delay at each further attempt. Defaults to 2.
	Factor float64
	// Max bounds the delay, jitter included. Defaults to 1h.
	Max time.Duration
	// Jitter is how the delay is randomized. Defaults to
	// JitterProportional.
	Jitter Jitter
	// JitterFraction is the spread of JitterProportional, from 0 to 1.
	// Defaults to 0.2 (±20%).
	JitterFraction float64
	// Rand returns a uniform number in [0, 1); tests set it to get fixed
	// delays. Defaults to math/rand/v2's Float64.
	Rand func() float64
}

func (b Backoff) withDefaults() Backoff {
	if b.Base <= 0 {
		b.Base = time.Second
	}
	if b.Factor < 1 {
		b.Factor = 2
	}
	if b.Max <= 0 {
		b.Max = time.Hour
	}
	if b.JitterFraction <= 0 || b.JitterFraction > 1 {
		b.JitterFraction = 0.2
	}
	if b.Rand == nil {
		b.Rand = rand.Float64
	}
	return b
}

// Delay returns the delay before attempt n+1 after attempt n (1-based)
// failed.
func (b Backoff) Delay(n int) time.Duration {
	b = b.withDefaults()
	n = max(n, 1)
	d := float64(b.Base) * math.Pow(b.Factor, float64(n-1))
	d = min(d, float64(b.Max))
	switch b.Jitter {
	case JitterFull:
		d *= b.Rand()
	case JitterEqual:
		d = d/2 + d/2*b.Rand()
	case JitterNone:
	default:
		d *= 1 + b.JitterFraction*(2*b.Rand()-1)
	}
	d = min(d, float64(b.Max))
	return time.Duration(d)
}
