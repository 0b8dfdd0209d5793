package storetest

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

// jobView is the part of a job that finishing it changes.
type jobView struct {
	State           gantry.State
	Attempt         int
	AttemptBase     int
	Result          json.RawMessage
	Error           string
	CancelRequested bool
	FinishedAt      time.Time
	// WorkerID and LeaseExpiresAt are documented "running only".
	WorkerID       string
	LeaseExpiresAt time.Time
}

func viewOf(j *job.Job) jobView {
	return jobView{
		State: j.State, Attempt: j.Attempt, AttemptBase: j.AttemptBase, Result: j.Result, Error: j.Error,
		CancelRequested: j.CancelRequested, FinishedAt: j.FinishedAt, WorkerID: j.WorkerID, LeaseExpiresAt: j.LeaseExpiresAt,
	}
}

// backoffRecorder is a Backoff func that records the attempts it is asked
// about; stores may call it from any goroutine.
type backoffRecorder struct {
	mu    sync.Mutex
	calls []int
}

func (b *backoffRecorder) backoff(attempt int) time.Duration {
	b.mu.Lock()
	b.calls = append(b.calls, attempt)
	b.mu.Unlock()
	return time.Duration(attempt) * time.Minute
}

// distinct returns the distinct attempts asked about, sorted, and forgets them.
func (b *backoffRecorder) distinct() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := slices.Clone(b.calls)
	slices.Sort(out)
	b.calls = nil
	return slices.Compact(out)
}

func testFinish(t *testing.T, newStore newStoreFunc) {
	t.Run("Succeeded", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Tenant: tenantA, Type: "t"})
		t1, t2 := at(time.Second), at(5*time.Second)
		l := h.leaseJob(t1, w, j)
		got := h.mustFinish(t2, store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeSucceeded, Result: json.RawMessage(`{"pages": 12, "ok": true}`)})
		want := jobView{State: gantry.StateSucceeded, Attempt: 1, Result: json.RawMessage(`{"ok":true,"pages":12}`), FinishedAt: t2}
		if diff := cmp.Diff(want, viewOf(got), cmpOpts); diff != "" {
			t.Errorf("FinishJobs result job mismatch (-want +got):\n%s", diff)
		}
		stored := h.get(j.ID)
		if diff := cmp.Diff(want, viewOf(stored), cmpOpts); diff != "" {
			t.Errorf("stored job mismatch (-want +got):\n%s", diff)
		}
		wantAttempts := []job.Attempt{{Attempt: 1, WorkerID: w, Token: l.Token, StartedAt: t1, FinishedAt: t2, Outcome: job.OutcomeSucceeded}}
		if diff := cmp.Diff(wantAttempts, stored.Attempts, cmpOpts); diff != "" {
			t.Errorf("attempts mismatch (-want +got):\n%s", diff)
		}
		h.wantEvent(stored, job.EventSucceeded, t2)
		if stored.Token != l.Token {
			t.Errorf("finished job's Token = %d, want the latest lease's %d", stored.Token, l.Token)
		}
	})

	t.Run("FailedRetryable", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t", MaxAttempts: 3})
		var rec backoffRecorder
		var tokens []int64
		for attempt := 1; attempt <= 2; attempt++ {
			start := at(time.Duration(attempt) * time.Hour)
			if attempt > 1 {
				if n, _ := h.promote(start, 10); n != 1 {
					t.Fatalf("PromoteDue promoted %d jobs, want 1", n)
				}
			}
			l := h.leaseJob(start, w, j)
			tokens = append(tokens, l.Token)
			end := start.Add(time.Second)
			res := h.finishP(&store.FinishJobsParams{Now: end, Backoff: rec.backoff, Outcomes: []store.Outcome{
				{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "boom", Retryable: true},
			}})[0]
			if !res.OK {
				t.Fatalf("attempt %d: FinishJobs OK false", attempt)
			}
			if got := rec.distinct(); !cmp.Equal(got, []int{attempt}) {
				t.Errorf("attempt %d: Backoff called with %v, want [%d]", attempt, got, attempt)
			}
			stored := h.get(j.ID)
			want := jobView{State: gantry.StateRetrying, Attempt: attempt, Error: "boom"}
			if diff := cmp.Diff(want, viewOf(stored), cmpOpts); diff != "" {
				t.Errorf("attempt %d: job mismatch (-want +got):\n%s", attempt, diff)
			}
			if diff := cmp.Diff(want, viewOf(res.Job), cmpOpts); diff != "" {
				t.Errorf("attempt %d: FinishJobs result job mismatch (-want +got):\n%s", attempt, diff)
			}
			if wantRunAt := end.Add(time.Duration(attempt) * time.Minute); !stored.RunAt.Equal(wantRunAt) {
				t.Errorf("attempt %d: RunAt = %v, want now + Backoff(%d) = %v", attempt, stored.RunAt, attempt, wantRunAt)
			}
			h.wantEvent(stored, job.EventRetrying, end)
		}
		var wantAttempts []job.Attempt
		for i, tok := range tokens {
			start := at(time.Duration(i+1) * time.Hour)
			wantAttempts = append(wantAttempts, job.Attempt{Attempt: i + 1, WorkerID: w, Token: tok, StartedAt: start, FinishedAt: start.Add(time.Second), Outcome: job.OutcomeFailed, Error: "boom"})
		}
		if diff := cmp.Diff(wantAttempts, h.get(j.ID).Attempts, cmpOpts); diff != "" {
			t.Errorf("attempts mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("RetryAfterOverridesBackoff", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t"})
		l := h.leaseJob(t0, w, j)
		now := at(time.Second)
		h.mustFinish(now, store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "slow down", Retryable: true, RetryAfter: 7 * time.Minute})
		got := h.get(j.ID)
		if got.State != gantry.StateRetrying || !got.RunAt.Equal(now.Add(7*time.Minute)) {
			t.Errorf("after RetryAfter 7m: state %s, RunAt %v; want retrying, %v", got.State, got.RunAt, now.Add(7*time.Minute))
		}
	})

	t.Run("NonRetryable", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t", MaxAttempts: 5})
		l := h.leaseJob(t0, w, j)
		now := at(time.Second)
		got := h.mustFinish(now, store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "bad input"})
		want := jobView{State: gantry.StateFailed, Attempt: 1, Error: "bad input", FinishedAt: now}
		if diff := cmp.Diff(want, viewOf(got), cmpOpts); diff != "" {
			t.Errorf("FinishJobs result job mismatch (-want +got):\n%s", diff)
		}
		stored := h.get(j.ID)
		if diff := cmp.Diff(want, viewOf(stored), cmpOpts); diff != "" {
			t.Errorf("stored job mismatch (-want +got):\n%s", diff)
		}
		wantAttempts := []job.Attempt{{Attempt: 1, WorkerID: w, Token: l.Token, StartedAt: t0, FinishedAt: now, Outcome: job.OutcomeFailed, Error: "bad input"}}
		if diff := cmp.Diff(wantAttempts, stored.Attempts, cmpOpts); diff != "" {
			t.Errorf("attempts mismatch (-want +got):\n%s", diff)
		}
		h.wantEvent(stored, job.EventFailed, now)
	})

	t.Run("AttemptsExhausted", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t", MaxAttempts: 2})
		l := h.leaseJob(t0, w, j)
		h.mustFinish(at(time.Second), store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "e1", Retryable: true})
		h.promote(at(time.Hour), 10)
		l = h.leaseJob(at(time.Hour), w, j)
		now := at(time.Hour + time.Second)
		got := h.mustFinish(now, store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "e2", Retryable: true})
		want := jobView{State: gantry.StateFailed, Attempt: 2, Error: "e2", FinishedAt: now}
		if diff := cmp.Diff(want, viewOf(got), cmpOpts); diff != "" {
			t.Errorf("FinishJobs result job mismatch (-want +got):\n%s", diff)
		}
		stored := h.get(j.ID)
		if !store.Exhausted(stored) {
			t.Errorf("store.Exhausted(job after %d of %d attempts) = false", stored.Attempt, stored.MaxAttempts)
		}
		h.wantEvent(stored, job.EventFailed, now)
		if got := h.lease(at(2*time.Hour), w, 10); len(got) != 0 {
			t.Errorf("a dead-lettered job was leased again: %v", ids(got))
		}
	})

	t.Run("Canceled", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t"})
		l := h.leaseJob(t0, w, j)
		now := at(time.Second)
		got := h.mustFinish(now, store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeCanceled, Error: "gave up"})
		if got.State != gantry.StateCanceled || !got.FinishedAt.Equal(now) {
			t.Errorf("FinishJobs(canceled) job: state %s, FinishedAt %v; want canceled, %v", got.State, got.FinishedAt, now)
		}
		stored := h.get(j.ID)
		if diff := cmp.Diff(viewOf(got), viewOf(stored), cmpOpts); diff != "" {
			t.Errorf("stored job differs from FinishJobs' result (-result +stored):\n%s", diff)
		}
		if n := len(stored.Attempts); n != 1 || stored.Attempts[0].Outcome != job.OutcomeCanceled || !stored.Attempts[0].FinishedAt.Equal(now) {
			t.Errorf("attempts = %+v, want one ended canceled at %v", stored.Attempts, now)
		}
		h.wantEvent(stored, job.EventCanceled, now)
	})

	t.Run("FailedWhileCancelRequested", func(t *testing.T) {
		for _, retryable := range []bool{true, false} {
			h := begin(t, newStore)
			w := h.worker(t0)
			j := h.submit(t0, job.Spec{Type: "t", MaxAttempts: 5})
			l := h.leaseJob(t0, w, j)
			h.cancel(at(time.Second), j.ID)
			now := at(2 * time.Second)
			got := h.mustFinish(now, store.Outcome{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "interrupted", Retryable: retryable})
			if got.State != gantry.StateCanceled || !got.FinishedAt.Equal(now) {
				t.Errorf("retryable %v: failure after a cancel request: state %s, FinishedAt %v; want canceled, %v", retryable, got.State, got.FinishedAt, now)
			}
			stored := h.get(j.ID)
			if stored.State != gantry.StateCanceled {
				t.Errorf("retryable %v: stored state %s, want canceled", retryable, stored.State)
			}
			h.wantEvent(stored, job.EventCanceled, now)
		}
	})

	t.Run("Fencing", func(t *testing.T) {
		for _, outcome := range []string{job.OutcomeSucceeded, job.OutcomeFailed, job.OutcomeCanceled} {
			t.Run(title(outcome), func(t *testing.T) {
				h := begin(t, newStore)
				w1, w2 := h.worker(t0), h.worker(t0)
				j := h.submit(t0, job.Spec{Type: "t", MaxAttempts: 5})
				l1 := h.leaseJob(t0, w1, j)
				// Worker 1 pauses; its lease expires and is rescued, and worker 2 gets the job.
				if got := h.rescue(at(ttl)); len(got) != 1 {
					t.Fatalf("RescueExpired rescued %d jobs, want 1", len(got))
				}
				l2 := h.leaseJob(at(ttl+time.Second), w2, j)
				if l2.Token <= l1.Token {
					t.Fatalf("re-lease token %d not above %d", l2.Token, l1.Token)
				}
				// Worker 1 wakes up and reports: rejected, nothing changes.
				before := h.get(j.ID)
				seq := h.lastSeq()
				stale := store.Outcome{JobID: j.ID, Token: l1.Token, Outcome: outcome, Result: json.RawMessage(`"stale"`), Error: "stale"}
				if r := h.finish(at(ttl+2*time.Second), stale); r.OK {
					t.Fatalf("stale worker's %s report: OK true, want false", outcome)
				}
				if diff := cmp.Diff(before, h.get(j.ID), cmpOpts); diff != "" {
					t.Errorf("stale report changed the job (-before +after):\n%s", diff)
				}
				if got := h.lastSeq(); got != seq {
					t.Errorf("stale report appended events")
				}
				// Worker 2 reports: accepted.
				done := at(ttl + 3*time.Second)
				got := h.mustFinish(done, store.Outcome{JobID: j.ID, Token: l2.Token, Outcome: job.OutcomeSucceeded, Result: json.RawMessage(`"fresh"`)})
				if got.State != gantry.StateSucceeded || !jsonEqual(got.Result, json.RawMessage(`"fresh"`)) {
					t.Fatalf("current worker's report: state %s, result %s; want succeeded, \"fresh\"", got.State, got.Result)
				}
				// Late reports of either lease after the outcome is recorded change nothing.
				after := h.get(j.ID)
				for _, o := range []store.Outcome{stale, {JobID: j.ID, Token: l2.Token, Outcome: outcome, Error: "again"}} {
					if r := h.finish(at(ttl+4*time.Second), o); r.OK {
						t.Errorf("report with token %d after the job finished: OK true, want false", o.Token)
					}
				}
				if diff := cmp.Diff(after, h.get(j.ID), cmpOpts); diff != "" {
					t.Errorf("late reports changed the finished job (-before +after):\n%s", diff)
				}
				wantAttempts := []job.Attempt{
					{Attempt: 1, WorkerID: w1, Token: l1.Token, StartedAt: t0, FinishedAt: at(ttl), Outcome: job.OutcomeExpired},
					{Attempt: 2, WorkerID: w2, Token: l2.Token, StartedAt: at(ttl + time.Second), FinishedAt: done, Outcome: job.OutcomeSucceeded},
				}
				if diff := cmp.Diff(wantAttempts, sansLossErrors(after.Attempts), cmpOpts); diff != "" {
					t.Errorf("attempts mismatch (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("NotRunning", func(t *testing.T) {
		for _, st := range []gantry.State{gantry.StateScheduled, gantry.StateQueued, gantry.StateRetrying, gantry.StateSucceeded, gantry.StateFailed, gantry.StateCanceled} {
			t.Run(title(st), func(t *testing.T) {
				h := begin(t, newStore)
				j := h.inState(t0, st, job.Spec{Type: "t"})
				seq := h.lastSeq()
				if r := h.finish(at(time.Second), store.Outcome{JobID: j.ID, Token: j.Token, Outcome: job.OutcomeSucceeded}); r.OK {
					t.Errorf("report on a %s job with its last token: OK true, want false", st)
				}
				if diff := cmp.Diff(j, h.get(j.ID), cmpOpts); diff != "" {
					t.Errorf("report on a %s job changed it (-before +after):\n%s", st, diff)
				}
				if h.lastSeq() != seq {
					t.Errorf("rejected report appended events")
				}
			})
		}
		t.Run("UnknownJob", func(t *testing.T) {
			h := begin(t, newStore)
			if r := h.finish(t0, store.Outcome{JobID: job.NewID(t0), Token: 1, Outcome: job.OutcomeSucceeded}); r.OK {
				t.Error("report on an unknown job: OK true, want false")
			}
		})
	})

	t.Run("MixedBatchInOrder", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		a := h.submit(t0, job.Spec{Type: "a"})
		b := h.submit(t0, job.Spec{Type: "b"})
		c := h.submit(t0, job.Spec{Type: "c"})
		la, lb, lc := h.leaseJob(t0, w, a), h.leaseJob(t0, w, b), h.leaseJob(t0, w, c)
		now := at(time.Second)
		res := h.finishP(&store.FinishJobsParams{Now: now, Outcomes: []store.Outcome{
			{JobID: c.ID, Token: lc.Token, Outcome: job.OutcomeFailed, Error: "x"},
			{JobID: b.ID, Token: lb.Token - 1, Outcome: job.OutcomeSucceeded},
			{JobID: a.ID, Token: la.Token, Outcome: job.OutcomeSucceeded},
		}})
		type fate struct {
			OK    bool
			State gantry.State
		}
		var got []fate
		for _, r := range res {
			f := fate{OK: r.OK}
			if r.Job != nil {
				f.State = r.Job.State
			}
			got = append(got, f)
		}
		want := []fate{{true, gantry.StateFailed}, {false, ""}, {true, gantry.StateSucceeded}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("FinishJobs results mismatch (-want +got):\n%s", diff)
		}
		if s := h.state(b.ID); s != gantry.StateRunning {
			t.Errorf("job with a stale outcome is %s, want running", s)
		}
	})

	t.Run("SameJobTwiceInOneCall", func(t *testing.T) {
		// Two reports of one lease in one call: the first wins, the second is stale.
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t"})
		l := h.leaseJob(t0, w, j)
		res := h.finishP(&store.FinishJobsParams{Now: at(time.Second), Outcomes: []store.Outcome{
			{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeSucceeded, Result: json.RawMessage(`1`)},
			{JobID: j.ID, Token: l.Token, Outcome: job.OutcomeFailed, Error: "second"},
		}})
		if !res[0].OK || res[1].OK {
			t.Errorf("two reports of one lease in one call: OK %v, %v; want true, false", res[0].OK, res[1].OK)
		}
		if got := h.get(j.ID); got.State != gantry.StateSucceeded || len(got.Attempts) != 1 {
			t.Errorf("job after two reports: state %s, %d attempts; want succeeded, 1", got.State, len(got.Attempts))
		}
		if n := len(h.eventsSince(0, func(e *job.Event) bool { return e.JobID == j.ID && e.Kind == job.EventSucceeded })); n != 1 {
			t.Errorf("%d job.succeeded events, want 1", n)
		}
	})
}
