package event_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gantryhq/gantry/internal/event"
	"github.com/gantryhq/gantry/internal/job"
	"github.com/gantryhq/gantry/internal/store"
	"github.com/gantryhq/gantry/internal/store/sqlite"
)

// harness is a SQLite store and a running hub over it, inside a synctest
// bubble.
type harness struct {
	t   *testing.T
	st  *sqlite.Store
	hub *event.Hub
}

// run calls f inside a synctest bubble with a fresh store and a running
// hub; both are closed when f returns.
func run(t *testing.T, opts event.Options, f func(t *testing.T, h *harness)) {
	t.Helper()
	dir := t.TempDir()
	synctest.Test(t, func(t *testing.T) {
		st, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(dir, "gantry.db")})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		hub := event.NewHub(st, opts)
		done := make(chan error)
		go func() { done <- hub.Run(context.Background()) }()
		defer func() {
			hub.Close()
			if err := <-done; err != nil {
				t.Errorf("Run() = %v, want nil after Close", err)
			}
		}()
		f(t, &harness{t: t, st: st, hub: hub})
	})
}

// insert stores n jobs of tenant in one transaction: n job.submitted
// events in a row.
func (h *harness) insert(tenant string, n int) {
	h.t.Helper()
	now := time.Now()
	jobs := make([]*job.Job, n)
	for i := range jobs {
		sp := job.Spec{Type: "t", Tenant: tenant}
		sp.Normalize(now)
		jobs[i] = job.NewFromSpec(&sp, job.NewID(now), now)
	}
	if _, err := h.st.InsertJobs(h.t.Context(), &store.InsertJobsParams{Now: now, Jobs: jobs}); err != nil {
		h.t.Fatalf("InsertJobs: %v", err)
	}
}

// subscribe subscribes and closes the subscription at the end of the test.
func (h *harness) subscribe(f event.Filter, after int64) *event.Subscription {
	h.t.Helper()
	sub, err := h.hub.Subscribe(h.t.Context(), f, after)
	if err != nil {
		h.t.Fatalf("Subscribe(%+v, %d): %v", f, after, err)
	}
	h.t.Cleanup(sub.Close)
	return sub
}

// receive reads n events from sub, failing if it ends first or nothing
// comes for a (fake) minute.
func receive(t *testing.T, sub *event.Subscription, n int) []job.Event {
	t.Helper()
	var got []job.Event
	for len(got) < n {
		select {
		case ev, ok := <-sub.C():
			if !ok {
				t.Fatalf("subscription ended after %d of %d events: %v", len(got), n, sub.Err())
			}
			got = append(got, ev)
		case <-time.After(time.Minute):
			t.Fatalf("got %d of %d events, then nothing for a minute", len(got), n)
		}
	}
	return got
}

// quiet checks that sub has nothing more to deliver now.
func quiet(t *testing.T, sub *event.Subscription) {
	t.Helper()
	synctest.Wait()
	select {
	case ev, ok := <-sub.C():
		t.Fatalf("unexpected event %+v (open %t, err %v)", ev, ok, sub.Err())
	default:
	}
}

func seqs(evs []job.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Seq
	}
	return out
}

func seqRange(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func TestSubscribeReplaysThenLive(t *testing.T) {
	tests := []struct {
		after int64
		want  []int64
	}{
		{after: 0, want: seqRange(1, 15)},
		{after: 4, want: seqRange(5, 15)},
		{after: 10, want: seqRange(11, 15)},
		{after: -1, want: seqRange(11, 15)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("after=", tt.after), func(t *testing.T) {
			run(t, event.Options{PageSize: 3}, func(t *testing.T, h *harness) {
				h.insert("a", 10)
				sub := h.subscribe(event.Filter{}, tt.after)
				synctest.Wait()
				for range 5 {
					h.insert("a", 1)
				}
				got := receive(t, sub, len(tt.want))
				if diff := cmp.Diff(tt.want, seqs(got)); diff != "" {
					t.Errorf("Subscribe(after %d) seqs (-want +got):\n%s", tt.after, diff)
				}
				quiet(t, sub)
			})
		})
	}
}

// TestSubscribeWhileWriting resumes subscriptions while events are being
// written, with pages and buffers small enough that they switch between
// catching up and live many times: each must see every event once, in order.
func TestSubscribeWhileWriting(t *testing.T) {
	run(t, event.Options{PageSize: 7, Buffer: 3}, func(t *testing.T, h *harness) {
		const total = 300
		writerDone := make(chan struct{})
		var subs []*event.Subscription
		var from []int64
		go func() {
			defer close(writerDone)
			for i := range total {
				h.insert("a", 1)
				if i%50 == 0 {
					// Let the hub and the readers run between writes now and then.
					time.Sleep(time.Millisecond)
				}
			}
		}()
		for i := range 6 {
			after := int64(i * 40)
			subs = append(subs, h.subscribe(event.Filter{}, after))
			from = append(from, after+1)
			time.Sleep(time.Millisecond)
		}
		for i, sub := range subs {
			got := receive(t, sub, int(total-from[i]+1))
			if diff := cmp.Diff(seqRange(from[i], total), seqs(got)); diff != "" {
				t.Errorf("subscription after %d seqs (-want +got):\n%s", from[i]-1, diff)
			}
		}
		<-writerDone
		for _, sub := range subs {
			quiet(t, sub)
		}
	})
}

func TestFilter(t *testing.T) {
	run(t, event.Options{}, func(t *testing.T, h *harness) {
		h.insert("a", 2) // 1, 2
		h.insert("b", 1) // 3
		a := h.subscribe(event.Filter{Tenant: "a"}, 0)
		b := h.subscribe(event.Filter{Tenant: "b", Kinds: []string{job.EventSubmitted}}, 0)
		none := h.subscribe(event.Filter{Kinds: []string{job.EventSucceeded}}, 0)
		synctest.Wait()
		h.insert("b", 1) // 4
		h.insert("a", 1) // 5
		if diff := cmp.Diff([]int64{1, 2, 5}, seqs(receive(t, a, 3))); diff != "" {
			t.Errorf("tenant a seqs (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int64{3, 4}, seqs(receive(t, b, 2))); diff != "" {
			t.Errorf("tenant b seqs (-want +got):\n%s", diff)
		}
		quiet(t, a)
		quiet(t, b)
		quiet(t, none)
	})
}

// TestSlowSubscriber checks that a subscriber that does not read blocks
// neither the hub nor other subscribers, and later gets every event from
// the store, in order.
func TestSlowSubscriber(t *testing.T) {
	run(t, event.Options{Buffer: 4, PageSize: 10}, func(t *testing.T, h *harness) {
		slow := h.subscribe(event.Filter{}, -1)
		fast := h.subscribe(event.Filter{}, -1)
		synctest.Wait()
		const total = 50
		for range total {
			h.insert("a", 1)
			h.hub.Publish(job.Event{Kind: job.EventProgress, Tenant: "a"})
		}
		var got []job.Event
		for len(got) < total {
			ev := receive(t, fast, 1)[0]
			if ev.Kind != job.EventProgress {
				got = append(got, ev)
			}
		}
		if diff := cmp.Diff(seqRange(1, total), seqs(got)); diff != "" {
			t.Errorf("fast subscriber seqs (-want +got):\n%s", diff)
		}
		got = nil
		for len(got) < total {
			ev := receive(t, slow, 1)[0]
			if ev.Kind != job.EventProgress {
				got = append(got, ev)
			}
		}
		if diff := cmp.Diff(seqRange(1, total), seqs(got)); diff != "" {
			t.Errorf("slow subscriber seqs (-want +got):\n%s", diff)
		}
		// Caught up, it is live again.
		h.insert("a", 1)
		for {
			ev := receive(t, slow, 1)[0]
			if ev.Kind == job.EventProgress {
				continue
			}
			if ev.Seq != total+1 {
				t.Errorf("after catching up got seq %d, want %d", ev.Seq, total+1)
			}
			break
		}
	})
}

func TestPublish(t *testing.T) {
	run(t, event.Options{}, func(t *testing.T, h *harness) {
		h.insert("a", 3)
		a := h.subscribe(event.Filter{Tenant: "a"}, -1)
		b := h.subscribe(event.Filter{Tenant: "b"}, -1)
		progress := h.subscribe(event.Filter{Kinds: []string{job.EventProgress}}, -1)
		synctest.Wait()
		ev := job.Event{Kind: job.EventProgress, Tenant: "a", JobID: "j", Progress: &job.Progress{Percent: 42, Message: "half"}}
		h.hub.Publish(ev)
		want := ev
		want.Seq = 3 // the last stored event: resuming from it loses nothing
		for _, sub := range []*event.Subscription{a, progress} {
			if diff := cmp.Diff([]job.Event{want}, receive(t, sub, 1)); diff != "" {
				t.Errorf("published event (-want +got):\n%s", diff)
			}
		}
		quiet(t, b)
		// The progress subscription skipped the stored events it does not
		// match: its next progress event carries the newer seq.
		h.insert("a", 1)
		if got := receive(t, a, 1); got[0].Seq != 4 {
			t.Errorf("stored event seq = %d, want 4", got[0].Seq)
		}
		synctest.Wait()
		h.hub.Publish(ev)
		for _, sub := range []*event.Subscription{a, progress} {
			if got := receive(t, sub, 1); got[0].Kind != job.EventProgress || got[0].Seq != 4 {
				t.Errorf("event = %+v, want progress with seq 4", got[0])
			}
		}
		// Published right after a commit, it still comes after the stored
		// event: progress never overtakes the transition before it.
		// (The engine publishes progress after its heartbeat's store write,
		// which the store serializes after the insert's change hint; a
		// write does the same here.)
		h.insert("a", 1)
		if _, err := h.st.PruneWorkers(t.Context(), time.Time{}); err != nil {
			t.Fatal(err)
		}
		h.hub.Publish(ev)
		got := receive(t, a, 2)
		if got[0].Kind != job.EventSubmitted || got[0].Seq != 5 || got[1].Kind != job.EventProgress || got[1].Seq != 5 {
			t.Errorf("events = %+v, want the stored event 5, then progress with seq 5", got)
		}
	})
}

func TestTooOld(t *testing.T) {
	run(t, event.Options{PollInterval: time.Minute}, func(t *testing.T, h *harness) {
		h.insert("a", 5)
		time.Sleep(time.Hour)
		h.insert("a", 2) // 6, 7
		if _, err := h.st.Retain(t.Context(), &store.RetainParams{EventsBefore: time.Now().Add(-time.Minute)}); err != nil {
			t.Fatal(err)
		}
		for _, after := range []int64{0, 4} {
			if _, err := h.hub.Subscribe(t.Context(), event.Filter{}, after); !errors.Is(err, event.ErrTooOld) {
				t.Errorf("Subscribe(after %d) error = %v, want ErrTooOld", after, err)
			}
		}
		// Resuming from the last deleted event loses nothing.
		sub := h.subscribe(event.Filter{}, 5)
		if diff := cmp.Diff([]int64{6, 7}, seqs(receive(t, sub, 2))); diff != "" {
			t.Errorf("seqs after 5 (-want +got):\n%s", diff)
		}
	})
}

// TestTooOldWhileCatchingUp checks that a subscriber whose buffer
// overflowed, and whose missed events were then removed by retention, ends
// with ErrTooOld instead of skipping them.
func TestTooOldWhileCatchingUp(t *testing.T) {
	run(t, event.Options{Buffer: 2, PageSize: 1, PollInterval: time.Minute}, func(t *testing.T, h *harness) {
		sub := h.subscribe(event.Filter{}, -1)
		synctest.Wait()
		h.insert("a", 10)
		synctest.Wait()
		time.Sleep(time.Hour)
		if _, err := h.st.Retain(t.Context(), &store.RetainParams{EventsBefore: time.Now()}); err != nil {
			t.Fatal(err)
		}
		var got []int64
		timeout := time.After(24 * time.Hour)
	read:
		for {
			select {
			case ev, ok := <-sub.C():
				if !ok {
					break read
				}
				got = append(got, ev.Seq)
			case <-timeout:
				t.Fatalf("subscription still open a day after its events were removed; got %v", got)
			}
		}
		if !errors.Is(sub.Err(), event.ErrTooOld) {
			t.Errorf("Err() = %v, want ErrTooOld", sub.Err())
		}
		if len(got) < 2 || len(got) >= 10 {
			t.Fatalf("got seqs %v, want the 2 buffered ones and at most the page being sent", got)
		}
		if diff := cmp.Diff(seqRange(1, int64(len(got))), got); diff != "" {
			t.Errorf("seqs before the end (-want +got):\n%s", diff)
		}
	})
}

func TestEnd(t *testing.T) {
	run(t, event.Options{}, func(t *testing.T, h *harness) {
		ctx, cancel := context.WithCancel(t.Context())
		byCtx, err := h.hub.Subscribe(ctx, event.Filter{}, -1)
		if err != nil {
			t.Fatal(err)
		}
		byClose := h.subscribe(event.Filter{}, -1)
		byHub := h.subscribe(event.Filter{}, 0)

		cancel()
		drain(byCtx)
		if !errors.Is(byCtx.Err(), context.Canceled) {
			t.Errorf("Err() after ctx canceled = %v, want context.Canceled", byCtx.Err())
		}
		byClose.Close()
		drain(byClose)
		if !errors.Is(byClose.Err(), event.ErrClosed) {
			t.Errorf("Err() after Close = %v, want ErrClosed", byClose.Err())
		}
		if byHub.Err() != nil {
			t.Errorf("Err() of a running subscription = %v, want nil", byHub.Err())
		}
		h.hub.Close()
		drain(byHub)
		if !errors.Is(byHub.Err(), event.ErrClosed) {
			t.Errorf("Err() after hub Close = %v, want ErrClosed", byHub.Err())
		}
		if _, err := h.hub.Subscribe(t.Context(), event.Filter{}, -1); !errors.Is(err, event.ErrClosed) {
			t.Errorf("Subscribe after Close error = %v, want ErrClosed", err)
		}
	})
}

func drain(sub *event.Subscription) {
	for range sub.C() {
	}
}
