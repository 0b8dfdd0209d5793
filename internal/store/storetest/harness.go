package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// t0 is the suite's base time; every call passes t0 plus an offset.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// at returns t0 + d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// ttl is the lease TTL the suite uses unless a test says otherwise.
const ttl = 30 * time.Second

// upSince is a server start long enough ago that no startup grace applies.
var upSince = t0.Add(-24 * time.Hour)

// Tenants used by the suite.
const (
	tenantA = "acme"
	tenantB = "globex"
)

// backoff is the suite's default backoff policy: 10 s times the attempt.
func backoff(attempt int) time.Duration { return time.Duration(attempt) * 10 * time.Second }

// cmpOpts compare stored records: times at millisecond precision, JSON by
// value, nil and empty slices and maps alike.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b time.Time) bool {
		return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
	}),
	cmp.Comparer(jsonEqual),
	equateEmpty(),
}

// ignoreAttempts leaves a job's attempt history out of a comparison.
var ignoreAttempts = cmpopts.IgnoreFields(job.Job{}, "Attempts")

// ignoreSeq leaves an event's sequence number out of a comparison.
var ignoreSeq = cmpopts.IgnoreFields(job.Event{}, "Seq")

// equateEmpty is cmpopts.EquateEmpty without json.RawMessage, which
// jsonEqual handles (two options for one type would be ambiguous).
func equateEmpty() cmp.Option {
	isEmpty := func(x any) bool {
		v := reflect.ValueOf(x)
		return (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0
	}
	return cmp.FilterValues(func(x, y any) bool {
		if _, ok := x.(json.RawMessage); ok {
			return false
		}
		return isEmpty(x) && isEmpty(y)
	}, cmp.Comparer(func(_, _ any) bool { return true }))
}

// jsonEqual reports whether a and b hold the same JSON value; empty and
// null are alike.
func jsonEqual(a, b json.RawMessage) bool {
	blank := func(m json.RawMessage) bool { return len(m) == 0 || string(m) == "null" }
	if blank(a) || blank(b) {
		return blank(a) && blank(b)
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(va, vb)
}

// harness wraps one fresh store for one test, with helpers that fail the
// test on unexpected errors. Use it only from the test's own goroutine.
type harness struct {
	t *testing.T
	s store.Store
	w string // a worker registered on first use by defaultWorker
}

// begin makes a fresh store for t.
func begin(t *testing.T, newStore newStoreFunc) *harness {
	t.Helper()
	s := newStore(t)
	if s == nil {
		t.Fatal("newStore returned nil")
	}
	return &harness{t: t, s: s}
}

// record makes the record of sp submitted at now.
func (h *harness) record(now time.Time, sp job.Spec) *job.Job {
	h.t.Helper()
	return newRecord(h.t, now, sp)
}

// newRecord makes the record of sp submitted at now: Normalize, Validate,
// NewFromSpec.
func newRecord(t testing.TB, now time.Time, sp job.Spec) *job.Job {
	t.Helper()
	sp.Normalize(now)
	if err := sp.Validate(now, job.Limits{}); err != nil {
		t.Fatalf("invalid spec %+v: %v", sp, err)
	}
	return job.NewFromSpec(&sp, job.NewID(now), now)
}

// insertJobs calls InsertJobs and fails the test on error.
func (h *harness) insertJobs(p *store.InsertJobsParams) []store.InsertResult {
	h.t.Helper()
	res, err := h.s.InsertJobs(h.t.Context(), p)
	if err != nil {
		h.t.Fatalf("InsertJobs: %v", err)
	}
	if len(res) != len(p.Jobs) {
		h.t.Fatalf("InsertJobs returned %d results for %d jobs", len(res), len(p.Jobs))
	}
	return res
}

// insert submits specs at now in one call, checks each was created, and
// returns the records sent.
func (h *harness) insert(now time.Time, specs ...job.Spec) []*job.Job {
	h.t.Helper()
	jobs := make([]*job.Job, len(specs))
	for i, sp := range specs {
		jobs[i] = h.record(now, sp)
	}
	res := h.insertJobs(&store.InsertJobsParams{Now: now, Jobs: jobs})
	for i, r := range res {
		if !r.Created || r.Job == nil || r.Job.ID != jobs[i].ID {
			h.t.Fatalf("InsertJobs result %d = %+v, want job %s created", i, r, jobs[i].ID)
		}
	}
	return jobs
}

// submit inserts one job at now and returns its record.
func (h *harness) submit(now time.Time, sp job.Spec) *job.Job {
	h.t.Helper()
	return h.insert(now, sp)[0]
}

// get returns a job (any tenant) and fails the test if it cannot.
func (h *harness) get(id string) *job.Job {
	h.t.Helper()
	j, err := h.s.GetJob(h.t.Context(), "", id)
	if err != nil {
		h.t.Fatalf("GetJob(%s): %v", id, err)
	}
	return j
}

// state returns a job's state.
func (h *harness) state(id string) gantry.State {
	h.t.Helper()
	return h.get(id).State
}

// worker registers an active worker of all tenants at now and returns its ID.
func (h *harness) worker(now time.Time) string {
	h.t.Helper()
	w := &job.Worker{
		ID: job.NewID(now), Name: "w", Host: "host", Capacity: 10, LeaseTTL: ttl,
		State: job.WorkerActive, CreatedAt: now, LastSeen: now,
	}
	if err := h.s.RegisterWorker(h.t.Context(), w); err != nil {
		h.t.Fatalf("RegisterWorker: %v", err)
	}
	return w.ID
}

// leaseP calls LeaseJobs and fails the test on error.
func (h *harness) leaseP(p *store.LeaseJobsParams) []*job.Job {
	h.t.Helper()
	jobs, err := h.s.LeaseJobs(h.t.Context(), p)
	if err != nil {
		h.t.Fatalf("LeaseJobs(%+v): %v", p, err)
	}
	if len(jobs) > p.Max {
		h.t.Fatalf("LeaseJobs(Max %d) leased %d jobs", p.Max, len(jobs))
	}
	return jobs
}

// lease leases up to max jobs of any queue, type and tenant at now.
func (h *harness) lease(now time.Time, workerID string, max int) []*job.Job {
	h.t.Helper()
	return h.leaseP(&store.LeaseJobsParams{Now: now, WorkerID: workerID, Max: max, TTL: ttl})
}

// leaseType leases the one queued job of type typ at now with the given
// TTL, and fails the test if there is not exactly one.
func (h *harness) leaseType(now time.Time, workerID, typ string, leaseTTL time.Duration) *job.Job {
	h.t.Helper()
	jobs := h.leaseP(&store.LeaseJobsParams{Now: now, WorkerID: workerID, Types: []string{typ}, Max: 10, TTL: leaseTTL})
	if len(jobs) != 1 {
		h.t.Fatalf("LeaseJobs(type %s) leased %d jobs, want 1", typ, len(jobs))
	}
	return jobs[0]
}

// leaseJob leases the queued job j, found by its type (unique among the
// store's queued jobs), at now.
func (h *harness) leaseJob(now time.Time, workerID string, j *job.Job) *job.Job {
	h.t.Helper()
	got := h.leaseType(now, workerID, j.Type, ttl)
	if got.ID != j.ID {
		h.t.Fatalf("leased job %s, want %s", got.ID, j.ID)
	}
	return got
}

// finishP calls FinishJobs and fails the test on error.
func (h *harness) finishP(p *store.FinishJobsParams) []store.FinishResult {
	h.t.Helper()
	if p.Backoff == nil {
		p.Backoff = backoff
	}
	res, err := h.s.FinishJobs(h.t.Context(), p)
	if err != nil {
		h.t.Fatalf("FinishJobs: %v", err)
	}
	if len(res) != len(p.Outcomes) {
		h.t.Fatalf("FinishJobs returned %d results for %d outcomes", len(res), len(p.Outcomes))
	}
	for i, r := range res {
		if r.JobID != p.Outcomes[i].JobID {
			h.t.Fatalf("FinishJobs result %d is for job %s, want %s (results in order)", i, r.JobID, p.Outcomes[i].JobID)
		}
	}
	return res
}

// finish records one outcome at now and returns whether it was accepted.
func (h *harness) finish(now time.Time, o store.Outcome) store.FinishResult {
	h.t.Helper()
	return h.finishP(&store.FinishJobsParams{Now: now, Outcomes: []store.Outcome{o}})[0]
}

// mustFinish records one outcome at now and fails the test if it was rejected.
func (h *harness) mustFinish(now time.Time, o store.Outcome) *job.Job {
	h.t.Helper()
	r := h.finish(now, o)
	if !r.OK {
		h.t.Fatalf("FinishJobs(%+v) OK false, want true", o)
	}
	return r.Job
}

// succeed leases j (by its unique type) at now and completes it at now+1s.
func (h *harness) succeed(now time.Time, workerID string, j *job.Job) *job.Job {
	h.t.Helper()
	l := h.leaseJob(now, workerID, j)
	return h.mustFinish(now.Add(time.Second), store.Outcome{JobID: l.ID, Token: l.Token, Outcome: job.OutcomeSucceeded})
}

// heartbeat calls HeartbeatJobs and fails the test on error.
func (h *harness) heartbeat(now time.Time, workerID string, leases ...store.HeartbeatLease) []store.HeartbeatResult {
	h.t.Helper()
	res, err := h.s.HeartbeatJobs(h.t.Context(), &store.HeartbeatJobsParams{Now: now, WorkerID: workerID, Leases: leases})
	if err != nil {
		h.t.Fatalf("HeartbeatJobs: %v", err)
	}
	if len(res) != len(leases) {
		h.t.Fatalf("HeartbeatJobs returned %d results for %d leases", len(res), len(leases))
	}
	for i, r := range res {
		if r.JobID != leases[i].JobID {
			h.t.Fatalf("HeartbeatJobs result %d is for job %s, want %s (results in order)", i, r.JobID, leases[i].JobID)
		}
	}
	return res
}

// rescue calls RescueExpired with no startup grace and fails the test on error.
func (h *harness) rescue(now time.Time) []*job.Job {
	h.t.Helper()
	return h.rescueP(&store.RescueParams{Now: now, UpSince: upSince, Limit: 1000})
}

// rescueP calls RescueExpired and fails the test on error.
func (h *harness) rescueP(p *store.RescueParams) []*job.Job {
	h.t.Helper()
	jobs, err := h.s.RescueExpired(h.t.Context(), p)
	if err != nil {
		h.t.Fatalf("RescueExpired: %v", err)
	}
	return jobs
}

// promote calls PromoteDue and fails the test on error.
func (h *harness) promote(now time.Time, limit int) (int, time.Time) {
	h.t.Helper()
	n, next, err := h.s.PromoteDue(h.t.Context(), now, limit)
	if err != nil {
		h.t.Fatalf("PromoteDue: %v", err)
	}
	return n, next
}

// cancel calls CancelJob as an admin and fails the test on error.
func (h *harness) cancel(now time.Time, id string) *job.Job {
	h.t.Helper()
	j, err := h.s.CancelJob(h.t.Context(), "", id, now)
	if err != nil {
		h.t.Fatalf("CancelJob(%s): %v", id, err)
	}
	return j
}

// events returns every stored event, reading pages of 100.
func (h *harness) events() []job.Event {
	h.t.Helper()
	var all []job.Event
	var after int64
	for {
		evs, err := h.s.ReadEvents(h.t.Context(), after, 100)
		if err != nil {
			h.t.Fatalf("ReadEvents(%d, 100): %v", after, err)
		}
		if len(evs) > 100 {
			h.t.Fatalf("ReadEvents(%d, 100) returned %d events", after, len(evs))
		}
		if len(evs) == 0 {
			return all
		}
		all = append(all, evs...)
		after = evs[len(evs)-1].Seq
	}
}

// lastSeq returns the Seq of the newest event, 0 if none.
func (h *harness) lastSeq() int64 {
	h.t.Helper()
	_, newest, err := h.s.EventBounds(h.t.Context())
	if err != nil {
		h.t.Fatalf("EventBounds: %v", err)
	}
	return newest
}

// eventsSince returns the events with Seq > after that match keep.
func (h *harness) eventsSince(after int64, keep func(*job.Event) bool) []job.Event {
	h.t.Helper()
	var out []job.Event
	for _, e := range h.events() {
		if e.Seq > after && keep(&e) {
			out = append(out, e)
		}
	}
	return out
}

// jobEvents returns the events of job id, oldest first.
func (h *harness) jobEvents(id string) []job.Event {
	h.t.Helper()
	return h.eventsSince(0, func(e *job.Event) bool { return e.JobID == id })
}

// kinds returns the kinds of evs.
func kinds(evs []job.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Kind
	}
	return out
}

// lastEvent returns the newest event of job id, failing the test if there is none.
func (h *harness) lastEvent(id string) job.Event {
	h.t.Helper()
	evs := h.jobEvents(id)
	if len(evs) == 0 {
		h.t.Fatalf("no event for job %s", id)
	}
	return evs[len(evs)-1]
}

// wantEvent checks that the newest event of job j is the one want
// describes, where the job fields come from j (as it is now).
func (h *harness) wantEvent(j *job.Job, kind string, now time.Time) {
	h.t.Helper()
	want := job.EventFor(kind, j, now)
	got := h.lastEvent(j.ID)
	if diff := cmp.Diff(want, got, cmpOpts, ignoreSeq); diff != "" {
		h.t.Errorf("newest event of job %s mismatch (-want +got):\n%s", j.ID, diff)
	}
}

// batch returns a batch (any tenant) and fails the test if it cannot.
func (h *harness) batch(id string) *job.Batch {
	h.t.Helper()
	b, err := h.s.GetBatch(h.t.Context(), "", id)
	if err != nil {
		h.t.Fatalf("GetBatch(%s): %v", id, err)
	}
	return b
}

// listAll pages ListJobs with limit until the end and returns every job.
func (h *harness) listAll(p store.ListJobsParams) []*job.Job {
	h.t.Helper()
	var all []*job.Job
	for range 10000 {
		page, next, err := h.s.ListJobs(h.t.Context(), &p)
		if err != nil {
			h.t.Fatalf("ListJobs(%+v): %v", p, err)
		}
		if len(page) > p.Limit {
			h.t.Fatalf("ListJobs(limit %d) returned %d jobs", p.Limit, len(page))
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		p.Cursor = next
	}
	h.t.Fatal("ListJobs never returned an empty cursor")
	return nil
}

// ids returns the IDs of jobs.
func ids(jobs []*job.Job) []string {
	out := make([]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// reversed returns the IDs of jobs, last first.
func reversed(jobs []*job.Job) []string {
	out := ids(jobs)
	for i, k := 0, len(out)-1; i < k; i, k = i+1, k-1 {
		out[i], out[k] = out[k], out[i]
	}
	return out
}

// sortStrings compares string slices as sets.
var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })

// wantErr fails the test unless err wraps want.
func wantErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error = %v, want %v", what, err, want)
	}
}

// clone returns a deep copy of j (enough for building expectations).
func clone(j *job.Job) *job.Job {
	c := *j
	c.Params = append(json.RawMessage(nil), j.Params...)
	c.Result = append(json.RawMessage(nil), j.Result...)
	c.Tags = append([]string(nil), j.Tags...)
	if j.Metadata != nil {
		c.Metadata = make(map[string]string, len(j.Metadata))
		for k, v := range j.Metadata {
			c.Metadata[k] = v
		}
	}
	c.Attempts = append([]job.Attempt(nil), j.Attempts...)
	return &c
}

// sansLossErrors returns a copy of as without the errors of attempts that
// ended "expired" or "released": the store may describe the loss there in
// words of its own.
func sansLossErrors(as []job.Attempt) []job.Attempt {
	out := slices.Clone(as)
	for i := range out {
		if out[i].Outcome == job.OutcomeExpired || out[i].Outcome == job.OutcomeReleased {
			out[i].Error = ""
		}
	}
	return out
}

// typeN returns a distinct job type for the n-th job of a test.
func typeN(prefix string, n int) string { return fmt.Sprintf("%s.%d", prefix, n) }

// changes records OnChange callbacks for a test to wait on.
type changes struct {
	mu     sync.Mutex
	seen   []store.Change
	notify chan struct{}
}

func newChanges() *changes { return &changes{notify: make(chan struct{}, 1)} }

// record is the OnChange callback: it never blocks.
func (c *changes) record(ch store.Change) {
	c.mu.Lock()
	c.seen = append(c.seen, ch)
	c.mu.Unlock()
	select {
	case c.notify <- struct{}{}:
	default:
	}
}

// waitFor waits until a recorded change satisfies ok, for at most a
// generous liveness bound (callbacks may run after the call returns).
func (c *changes) waitFor(t *testing.T, what string, ok func(store.Change) bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		for _, ch := range c.seen {
			if ok(ch) {
				c.mu.Unlock()
				return
			}
		}
		seen := append([]store.Change(nil), c.seen...)
		c.mu.Unlock()
		select {
		case <-c.notify:
		case <-deadline.C:
			t.Errorf("OnChange was never called with %s; calls: %+v", what, seen)
			return
		case <-t.Context().Done():
			return
		}
	}
}

// reset forgets the recorded changes.
func (c *changes) reset() {
	c.mu.Lock()
	c.seen = nil
	c.mu.Unlock()
}

// defaultWorker returns a worker registered (at t0) on first use.
func (h *harness) defaultWorker() string {
	h.t.Helper()
	if h.w == "" {
		h.w = h.worker(t0)
	}
	return h.w
}

// inState submits sp at now and drives it into state st, using its type
// (which must be unique among the store's non-terminal jobs) to lease it.
// It returns the job as stored.
func (h *harness) inState(now time.Time, st gantry.State, sp job.Spec) *job.Job {
	h.t.Helper()
	if st == gantry.StateScheduled {
		sp.RunAt = now.Add(time.Hour)
	}
	j := h.submit(now, sp)
	var l *job.Job
	if st == gantry.StateRunning || st == gantry.StateRetrying || st == gantry.StateSucceeded || st == gantry.StateFailed {
		l = h.leaseJob(now, h.defaultWorker(), j)
	}
	switch st {
	case gantry.StateScheduled, gantry.StateQueued, gantry.StateRunning:
	case gantry.StateRetrying:
		h.mustFinish(now, store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "boom", Retryable: true})
	case gantry.StateSucceeded:
		h.mustFinish(now, store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeSucceeded})
	case gantry.StateFailed:
		h.mustFinish(now, store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "boom"})
	case gantry.StateCanceled:
		h.cancel(now, j.ID)
	default:
		h.t.Fatalf("inState: unknown state %q", st)
	}
	got := h.get(j.ID)
	if got.State != st {
		h.t.Fatalf("inState(%s): job %s is %s", st, j.ID, got.State)
	}
	return got
}
