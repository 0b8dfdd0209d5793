package storetest

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
)

func testHeartbeat(t *testing.T, newStore newStoreFunc) {
	t.Run("ExtendsByOwnTTL", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		a := h.submit(t0, job.Spec{Type: "a"})
		b := h.submit(t0, job.Spec{Type: "b"})
		la := h.leaseType(t0, w, "a", 30*time.Second)
		lb := h.leaseType(t0, w, "b", 60*time.Second)
		now := at(10 * time.Second)
		res := h.heartbeat(now, w, store.HeartbeatLease{JobID: a.ID, Token: la.Token}, store.HeartbeatLease{JobID: b.ID, Token: lb.Token})
		for i, tt := range []struct {
			id      string
			expires time.Time
		}{{a.ID, now.Add(30 * time.Second)}, {b.ID, now.Add(60 * time.Second)}} {
			r := res[i]
			if !r.OK || !r.ExpiresAt.Equal(tt.expires) || r.CancelRequested {
				t.Errorf("HeartbeatJobs result %d = {OK %v, ExpiresAt %v, CancelRequested %v}, want {true, %v, false}", i, r.OK, r.ExpiresAt, r.CancelRequested, tt.expires)
			}
			if r.Job == nil || r.Job.ID != tt.id || !r.Job.LeaseExpiresAt.Equal(tt.expires) || r.Job.State != gantry.StateRunning {
				t.Errorf("HeartbeatJobs result %d job = %+v, want job %s running until %v", i, r.Job, tt.id, tt.expires)
			}
			if got := h.get(tt.id).LeaseExpiresAt; !got.Equal(tt.expires) {
				t.Errorf("job %s LeaseExpiresAt = %v after heartbeat, want %v", tt.id, got, tt.expires)
			}
		}
		// The renewal keeps the job out of the rescuer's reach until the new expiry.
		if got := h.rescue(now.Add(29 * time.Second)); len(got) != 0 {
			t.Errorf("RescueExpired rescued %v before the renewed expiry", ids(got))
		}
	})

	t.Run("Progress", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t"})
		l := h.leaseJob(t0, w, j)
		steps := []struct {
			progress *job.Progress
			want     job.Progress
		}{
			{&job.Progress{Percent: 40, Message: "rendered 40/100"}, job.Progress{Percent: 40, Message: "rendered 40/100"}},
			{nil, job.Progress{Percent: 40, Message: "rendered 40/100"}},
			{&job.Progress{Percent: 100}, job.Progress{Percent: 100}},
		}
		for i, st := range steps {
			r := h.heartbeat(at(time.Duration(i+1)*time.Second), w, store.HeartbeatLease{JobID: j.ID, Token: l.Token, Progress: st.progress})[0]
			if !r.OK {
				t.Fatalf("heartbeat %d: OK false", i)
			}
			if diff := cmp.Diff(st.want, h.get(j.ID).Progress); diff != "" {
				t.Errorf("progress after heartbeat %d (%+v) mismatch (-want +got):\n%s", i, st.progress, diff)
			}
		}
		// Progress is not a stored event.
		if diff := cmp.Diff([]string{job.EventSubmitted, job.EventStarted}, kinds(h.jobEvents(j.ID))); diff != "" {
			t.Errorf("stored events after heartbeats mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("ReportsCancelRequested", func(t *testing.T) {
		h := begin(t, newStore)
		w := h.worker(t0)
		j := h.submit(t0, job.Spec{Type: "t"})
		l := h.leaseJob(t0, w, j)
		h.cancel(at(time.Second), j.ID)
		r := h.heartbeat(at(2*time.Second), w, store.HeartbeatLease{JobID: j.ID, Token: l.Token})[0]
		if !r.OK || !r.CancelRequested {
			t.Errorf("heartbeat after CancelJob = {OK %v, CancelRequested %v}, want {true, true}", r.OK, r.CancelRequested)
		}
		if got := h.get(j.ID); got.State != gantry.StateRunning || !got.CancelRequested {
			t.Errorf("job after cancel request and heartbeat: state %s, CancelRequested %v; want running, true", got.State, got.CancelRequested)
		}
	})

	t.Run("StaleChangesNothing", func(t *testing.T) {
		h := begin(t, newStore)
		w1, w2 := h.worker(t0), h.worker(t0)
		old := h.submit(t0, job.Spec{Type: "old"})
		lOld := h.leaseJob(t0, w1, old)
		// Rescue and re-lease: lOld's token is stale.
		h.rescue(at(ttl))
		lNew := h.leaseJob(at(ttl+time.Second), w2, old)
		if lNew.Token <= lOld.Token {
			t.Fatalf("re-lease token %d not above the old token %d", lNew.Token, lOld.Token)
		}
		tests := []struct {
			name  string
			token int64
		}{
			{"PreviousLease", lOld.Token},
			{"OffByOneBelow", lNew.Token - 1},
			{"OffByOneAbove", lNew.Token + 1},
			{"Zero", 0},
		}
		for _, tt := range tests {
			before := h.get(old.ID)
			seq := h.lastSeq()
			r := h.heartbeat(at(ttl+10*time.Second), w1, store.HeartbeatLease{JobID: old.ID, Token: tt.token, Progress: &job.Progress{Percent: 99, Message: "stale"}})[0]
			if r.OK {
				t.Errorf("%s: heartbeat with stale token %d: OK true, want false", tt.name, tt.token)
			}
			if diff := cmp.Diff(before, h.get(old.ID), cmpOpts); diff != "" {
				t.Errorf("%s: stale heartbeat changed the job (-before +after):\n%s", tt.name, diff)
			}
			if got := h.lastSeq(); got != seq {
				t.Errorf("%s: stale heartbeat appended events", tt.name)
			}
		}
	})

	t.Run("WrongState", func(t *testing.T) {
		for _, st := range []gantry.State{gantry.StateQueued, gantry.StateRetrying, gantry.StateSucceeded, gantry.StateFailed, gantry.StateCanceled} {
			t.Run(title(st), func(t *testing.T) {
				h := begin(t, newStore)
				j := h.inState(t0, st, job.Spec{Type: "t"})
				before := h.get(j.ID)
				r := h.heartbeat(at(time.Second), h.defaultWorker(), store.HeartbeatLease{JobID: j.ID, Token: j.Token, Progress: &job.Progress{Percent: 5}})[0]
				if r.OK {
					t.Errorf("heartbeat of a %s job with its last token: OK true, want false", st)
				}
				if diff := cmp.Diff(before, h.get(j.ID), cmpOpts); diff != "" {
					t.Errorf("heartbeat of a %s job changed it (-before +after):\n%s", st, diff)
				}
			})
		}
		t.Run("UnknownJob", func(t *testing.T) {
			h := begin(t, newStore)
			r := h.heartbeat(t0, h.defaultWorker(), store.HeartbeatLease{JobID: job.NewID(t0), Token: 1})[0]
			if r.OK {
				t.Error("heartbeat of an unknown job: OK true, want false")
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
		res := h.heartbeat(at(time.Second), w,
			store.HeartbeatLease{JobID: c.ID, Token: lc.Token},
			store.HeartbeatLease{JobID: b.ID, Token: lb.Token + 100},
			store.HeartbeatLease{JobID: a.ID, Token: la.Token},
		)
		var got []bool
		for _, r := range res {
			got = append(got, r.OK)
		}
		if diff := cmp.Diff([]bool{true, false, true}, got); diff != "" {
			t.Errorf("HeartbeatJobs OKs mismatch (-want +got):\n%s", diff)
		}
		if got := h.get(b.ID).LeaseExpiresAt; !got.Equal(t0.Add(ttl)) {
			t.Errorf("stale lease's expiry = %v, want unchanged %v", got, t0.Add(ttl))
		}
	})
}
