package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/gantryhq/gantry"
	"github.com/gantryhq/gantry/client"
)

func newWatchCommand(a *app) *cobra.Command {
	var batchID string
	cmd := &cobra.Command{
		Use:   "watch [JOB_ID | --batch BATCH_ID]",
		Short: "Follow a job or a batch live until it is finished",
		Long: "Watch follows a job or a batch live, from the server's event stream.\n\n" +
			"A job: its state changes and a progress bar, until it is finished; the\n" +
			"exit status is 0 if it succeeded and 1 if it failed or was canceled.\n" +
			"A batch: an overall progress bar with the counts of its jobs and the jobs\n" +
			"reporting progress, until the batch is done, then a summary.\n\n" +
			"With --json, it prints lines of JSON instead: the job (or batch) as it is\n" +
			"when the watch starts, each event, and the job (or batch) as it ended.",
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) > 1:
				return usagef("%s takes one job ID, not %d arguments", cmd.CommandPath(), len(args))
			case len(args) == 1 && batchID != "":
				return usagef("%s takes a job ID or --batch, not both", cmd.CommandPath())
			case len(args) == 0 && batchID == "":
				return usagef("%s needs a job ID or --batch BATCH_ID", cmd.CommandPath())
			case len(args) == 1 && args[0] == "":
				return usagef("%s needs a job ID, not an empty string", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if batchID != "" {
				return watchBatch(cmd.Context(), a, c, batchID, cmd.OutOrStdout())
			}
			return watchJob(cmd.Context(), a, c, args[0], cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&batchID, "batch", "", "watch this batch instead of a job")
	return cmd
}

// endedKinds are the events that end a job's attempt, or the job.
var endedKinds = map[string]bool{
	client.EventSucceeded: true, client.EventFailed: true, client.EventCanceled: true,
	client.EventRetrying: true, client.EventQueued: true,
}

// watchJob follows one job until it is finished.
func watchJob(ctx context.Context, a *app, c *client.Client, id string, out io.Writer) error {
	// Subscribe first, so that no transition after the read is missed.
	sub, err := c.Events(ctx, client.EventsOptions{JobID: id})
	if err != nil {
		return interrupted(ctx, err)
	}
	defer sub.Close()
	j, err := c.GetJob(ctx, id)
	if err != nil {
		return interrupted(ctx, err)
	}
	live, width := terminal(out)
	v := &jobView{w: out, live: live && !a.json, width: width, json: a.json}
	if err := v.start(j); err != nil {
		return err
	}
	for !j.State.Terminal() {
		e, err := sub.Next(ctx)
		if err != nil {
			v.end()
			if errors.Is(err, client.ErrTooOld) {
				return fmt.Errorf("watch: the event stream fell behind the retained events; run the command again: %w", err)
			}
			return interrupted(ctx, err)
		}
		if err := v.event(&e); err != nil {
			return err
		}
		if e.Kind == client.EventSucceeded || e.Kind == client.EventFailed || e.Kind == client.EventCanceled {
			// Read the job for its result and final state.
			if j, err = c.GetJob(ctx, id); err != nil {
				v.end()
				return interrupted(ctx, err)
			}
		}
	}
	v.end()
	if a.json {
		err = writeJSONLine(out, wireJob(j, true))
	} else {
		err = writeOutcome(out, j)
	}
	if err != nil {
		return err
	}
	if j.State != gantry.StateSucceeded {
		return &exitError{code: 1}
	}
	return nil
}

// interrupted turns an error caused by the end of ctx into errInterrupted.
func interrupted(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return errInterrupted
	}
	return err
}

// jobView prints the course of one job: a line per transition and, on a
// terminal, a progress bar redrawn in place below them.
type jobView struct {
	w        io.Writer
	live     bool
	width    int
	json     bool
	barShown bool
	running  bool
	progress client.Progress
	last     string // the last progress line printed (not live)
}

// jobBarWidth is the width of a job's progress bar.
const jobBarWidth = 30

func (v *jobView) start(j *client.Job) error {
	if v.json {
		if j.State.Terminal() {
			return nil // printed as it ended
		}
		return writeJSONLine(v.w, wireJob(j, true))
	}
	name := j.Type
	if j.Name != "" {
		name += " " + j.Name
	}
	_, err := fmt.Fprintf(v.w, "Job %s (%s): %s, attempt %d of %d\n", j.ID, name, j.State, j.Attempt, j.MaxAttempts)
	v.running = j.State == gantry.StateRunning
	v.progress = j.Progress
	if err == nil && v.running {
		err = v.drawProgress()
	}
	return err
}

// event shows one event.
func (v *jobView) event(e *client.Event) error {
	if v.json {
		return writeJSONLine(v.w, wireEvent(e))
	}
	if e.Kind == client.EventProgress {
		if e.Progress != nil {
			v.progress = *e.Progress
		}
		v.running = true
		return v.drawProgress()
	}
	switch {
	case e.Kind == client.EventStarted:
		v.running, v.progress, v.last = true, client.Progress{}, ""
	case endedKinds[e.Kind]:
		v.running = false
	}
	line := fmt.Sprintf("%s  %-14s", e.At.Local().Format("15:04:05.000"), e.Kind)
	if e.Attempt > 0 {
		line += fmt.Sprintf(" attempt %d", e.Attempt)
	}
	if e.Error != "" {
		line += ": " + firstLine(e.Error)
	}
	if err := v.println(strings.TrimRight(line, " ")); err != nil {
		return err
	}
	if v.running {
		return v.drawProgress()
	}
	return nil
}

// progressLine is the progress bar of the job.
func (v *jobView) progressLine() string {
	line := fmt.Sprintf("  %s %3d%%  %s", bar(jobBarWidth, v.progress.Percent, 100), v.progress.Percent, v.progress.Message)
	return strings.TrimRight(line, " ")
}

func (v *jobView) drawProgress() error {
	line := v.progressLine()
	if !v.live {
		if line == v.last {
			return nil
		}
		v.last = line
		_, err := fmt.Fprintln(v.w, line)
		return err
	}
	v.barShown = true
	_, err := fmt.Fprint(v.w, "\r"+clearLine+fit(line, max(v.width-1, 20)))
	return err
}

// println prints a line above the progress bar.
func (v *jobView) println(line string) error {
	prefix := ""
	if v.barShown {
		prefix, v.barShown = "\r"+clearLine, false
	}
	_, err := fmt.Fprintln(v.w, prefix+line)
	return err
}

// end erases the progress bar, if shown.
func (v *jobView) end() {
	if v.barShown {
		fmt.Fprint(v.w, "\r"+clearLine)
		v.barShown = false
	}
}

// progressTracker follows, from a batch's events, its running jobs that
// report progress, and the batch's end.
type progressTracker struct {
	batchID string
	// startTypes are job types shown from their start, before they report
	// progress (the demo's slow jobs).
	startTypes map[string]bool
	done       chan struct{} // closed on batch.done
	once       sync.Once

	mu    sync.Mutex
	order []string // job IDs, in the order they were first shown
	jobs  map[string]*slowJob
	names map[string]string // job ID to name, where known
	ended map[string]int    // job ID to its latest attempt that ended
}

func newProgressTracker(batchID string, names map[string]string, startTypes ...string) *progressTracker {
	t := &progressTracker{
		batchID: batchID, startTypes: map[string]bool{}, done: make(chan struct{}),
		jobs: make(map[string]*slowJob), names: names, ended: make(map[string]int),
	}
	for _, typ := range startTypes {
		t.startTypes[typ] = true
	}
	return t
}

// follow applies the events of sub until it ends.
func (t *progressTracker) follow(sub *client.Subscription) {
	for ev := range sub.C() {
		t.apply(&ev)
	}
}

func (t *progressTracker) apply(ev *client.Event) {
	if ev.BatchID != t.batchID {
		return
	}
	if ev.Kind == client.EventBatchDone {
		t.once.Do(func() { close(t.done) })
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case ev.Kind == client.EventStarted:
		delete(t.ended, ev.JobID)
		if t.startTypes[ev.Type] {
			t.show(ev)
		}
	case ev.Kind == client.EventProgress:
		if a, ok := t.ended[ev.JobID]; ok && ev.Attempt <= a {
			return // a late report of an attempt that ended
		}
		j := t.show(ev)
		if ev.Progress != nil {
			j.Percent, j.Message = ev.Progress.Percent, ev.Progress.Message
		}
	case endedKinds[ev.Kind]:
		t.ended[ev.JobID] = ev.Attempt
		if _, ok := t.jobs[ev.JobID]; ok {
			delete(t.jobs, ev.JobID)
			for i, id := range t.order {
				if id == ev.JobID {
					t.order = append(t.order[:i], t.order[i+1:]...)
					break
				}
			}
		}
	}
}

// show returns the shown job of ev, adding it if needed. t.mu is held.
func (t *progressTracker) show(ev *client.Event) *slowJob {
	if j, ok := t.jobs[ev.JobID]; ok {
		return j
	}
	name := t.names[ev.JobID]
	if name == "" {
		name = ev.JobID
		if len(name) > 6 {
			name = "…" + name[len(name)-6:]
		}
		if ev.Type != "" {
			name = ev.Type + " " + name
		}
	}
	j := &slowJob{Name: name}
	t.jobs[ev.JobID] = j
	t.order = append(t.order, ev.JobID)
	return j
}

// running returns the shown jobs, in the order they were first shown.
func (t *progressTracker) running() []slowJob {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]slowJob, 0, len(t.order))
	for _, id := range t.order {
		out = append(out, *t.jobs[id])
	}
	return out
}

// fill sets s's counts from b.
func fill(s *snapshot, b *client.Batch) {
	c := b.Counts
	s.Total = b.Total
	s.Queued = c[gantry.StateQueued] + c[gantry.StateScheduled]
	s.Running = c[gantry.StateRunning]
	s.Retrying = c[gantry.StateRetrying]
	s.Succeeded = c[gantry.StateSucceeded]
	s.Failed = c[gantry.StateFailed]
	s.Canceled = c[gantry.StateCanceled]
}

// batchFollower draws the progress of a batch from its events and counts.
type batchFollower struct {
	c       *client.Client
	batchID string
	title   string // of the live view
	label   string // of the jobs reporting progress
	out     io.Writer
	tracker *progressTracker
	sub     *client.Subscription
	follow  sync.WaitGroup
}

// newBatchFollower subscribes to the batch's events, so that nothing that
// happens from now on is missed. names may name the batch's jobs.
func newBatchFollower(ctx context.Context, c *client.Client, batchID string, out io.Writer, names map[string]string, startTypes ...string) (*batchFollower, error) {
	sub, err := c.Events(ctx, client.EventsOptions{BatchID: batchID})
	if err != nil {
		return nil, err
	}
	f := &batchFollower{c: c, batchID: batchID, title: "Batch", label: "jobs in progress:", out: out,
		sub: sub, tracker: newProgressTracker(batchID, names, startTypes...)}
	f.follow.Go(func() { f.tracker.follow(sub) })
	return f, nil
}

// close ends the subscription.
func (f *batchFollower) close() {
	f.sub.Close()
	f.follow.Wait()
}

// elapsed is how long the batch has been running by now, or took.
func elapsed(b *client.Batch) time.Duration {
	if b.Done && !b.FinishedAt.IsZero() {
		return max(b.FinishedAt.Sub(b.CreatedAt), 0)
	}
	return max(time.Since(b.CreatedAt), 0)
}

// errAborted ends a batchFollower's run when its abort channel is closed.
var errAborted = errors.New("aborted")

// run draws the batch's progress until it is done, ctx ends (interrupted)
// or abort is closed (errAborted; nil never does). It returns the batch as
// last read.
func (f *batchFollower) run(ctx context.Context, abort <-chan struct{}) (b *client.Batch, interrupted bool, err error) {
	live, width := terminal(f.out)
	interval := time.Second
	var view *liveView
	if live {
		interval = 100 * time.Millisecond
		view = &liveView{w: f.out, width: width}
		defer view.Close() // shows the cursor again, also after an error
	}
	// bg outlives a canceled ctx, for the read after an interruption.
	bg := context.WithoutCancel(ctx)
	subEnded := make(chan struct{})
	go func() {
		f.follow.Wait()
		close(subEnded)
	}()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		b, err = f.c.GetBatch(bg, f.batchID)
		if err != nil {
			return nil, interrupted, err
		}
		s := &snapshot{Title: f.title, Label: f.label, Elapsed: elapsed(b), Slow: f.tracker.running()}
		fill(s, b)
		if view != nil {
			err = view.Draw(s)
		} else {
			_, err = fmt.Fprintln(f.out, renderLine(s))
		}
		if err != nil {
			return nil, interrupted, err
		}
		if b.Done || interrupted {
			break
		}
		select {
		case <-ticker.C:
		case <-f.tracker.done:
		case <-ctx.Done():
			interrupted = true
			if view != nil {
				continue // draw the last state once more, then stop
			}
			return b, true, nil
		case <-abort:
			return nil, false, errAborted
		case <-subEnded:
			subEnded = nil
			if ctx.Err() == nil {
				if err := f.sub.Err(); err != nil && !errors.Is(err, client.ErrClosed) {
					return nil, false, fmt.Errorf("events: %w", err)
				}
			}
		}
	}
	if view != nil {
		if err := view.Close(); err != nil {
			return nil, interrupted, err
		}
	}
	return b, interrupted, nil
}

// batchSummary is the summary of a batch: its counts and how many of its
// jobs needed more than one attempt.
func batchSummary(ctx context.Context, c *client.Client, b *client.Batch, interrupted bool) (summary, error) {
	sum := summary{
		Elapsed: elapsed(b), Total: b.Total, Succeeded: b.Counts[gantry.StateSucceeded],
		Failed: b.Counts[gantry.StateFailed], Canceled: b.Counts[gantry.StateCanceled], Interrupted: interrupted,
	}
	for j, err := range c.ListBatchJobs(ctx, b.ID, client.ListBatchJobsOptions{Limit: maxLimit}) {
		if err != nil {
			return sum, err
		}
		if j.Attempt > 1 {
			sum.Retried++
		}
	}
	return sum, nil
}

// watchBatch follows a batch until it is done.
func watchBatch(ctx context.Context, a *app, c *client.Client, id string, out io.Writer) error {
	if a.json {
		return watchBatchJSON(ctx, c, id, out)
	}
	f, err := newBatchFollower(ctx, c, id, out, nil)
	if err != nil {
		return interrupted(ctx, err)
	}
	defer f.close()
	b, err := c.GetBatch(ctx, id)
	if err != nil {
		return interrupted(ctx, err)
	}
	if b.Name != "" {
		f.title = "Batch " + b.Name
	}
	b, stopped, err := f.run(ctx, nil)
	if err != nil {
		return interrupted(ctx, err)
	}
	if stopped {
		return errInterrupted
	}
	sum, err := batchSummary(ctx, c, b, false)
	if err != nil {
		return interrupted(ctx, err)
	}
	return writeSummary(out, sum)
}

// watchBatchJSON prints the batch, its events until it is done, and the
// done batch, as lines of JSON.
func watchBatchJSON(ctx context.Context, c *client.Client, id string, out io.Writer) error {
	sub, err := c.Events(ctx, client.EventsOptions{BatchID: id})
	if err != nil {
		return interrupted(ctx, err)
	}
	defer sub.Close()
	b, err := c.GetBatch(ctx, id)
	if err != nil {
		return interrupted(ctx, err)
	}
	if err := writeJSONLine(out, wireBatch(b)); err != nil || b.Done {
		return err
	}
	for {
		e, err := sub.Next(ctx)
		if err != nil {
			return interrupted(ctx, err)
		}
		if err := writeJSONLine(out, wireEvent(&e)); err != nil {
			return err
		}
		if e.Kind == client.EventBatchDone {
			break
		}
	}
	if b, err = c.GetBatch(ctx, id); err != nil {
		return interrupted(ctx, err)
	}
	return writeJSONLine(out, wireBatch(b))
}
