package engine

import (
	"context"
	"time"

	"github.com/gantryhq/gantry/internal/store"
)

// minPromoteWait keeps the promote loop from spinning when the store
// reports a due time that has already passed.
const minPromoteWait = 10 * time.Millisecond

// promoteLoop makes due scheduled and retrying jobs queued: every
// PromoteInterval, and exactly at the earliest pending due time.
func (e *Engine) promoteLoop(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		if e.cfg.Leader() {
			e.promote(ctx)
		}
		wait := e.cfg.PromoteInterval
		e.promoteMu.Lock()
		if !e.promoteAt.IsZero() {
			wait = min(wait, max(e.promoteAt.Sub(e.now()), minPromoteWait))
		}
		e.promoteMu.Unlock()
		t.Reset(wait)
		select {
		case <-t.C:
		case <-e.promoteWake:
		case <-ctx.Done():
			return
		}
	}
}

// promote promotes every due job and records the next due time. It stops
// between store calls when this engine stops being the leader, as do
// rescue and retain.
func (e *Engine) promote(ctx context.Context) {
	for {
		now := e.now()
		// Clear the known due time first: a job scheduled while the store
		// call runs sets it again and is not forgotten.
		e.promoteMu.Lock()
		e.promoteAt = time.Time{}
		e.promoteMu.Unlock()
		n, next, err := e.st.PromoteDue(ctx, now, maintenanceLimit)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("engine: promote due jobs", "err", err)
			}
			// Try again at the next interval.
			return
		}
		if n > 0 {
			e.log.Debug("engine: promoted jobs", "count", n)
			e.wakeLessees()
		}
		if n < maintenanceLimit || !e.cfg.Leader() {
			if !next.IsZero() {
				e.promoteMu.Lock()
				if e.promoteAt.IsZero() || next.Before(e.promoteAt) {
					e.promoteAt = next
				}
				e.promoteMu.Unlock()
			}
			return
		}
	}
}

// rescue ends expired leases.
func (e *Engine) rescue(ctx context.Context) {
	upSince := e.UpSince()
	for {
		jobs, err := e.st.RescueExpired(ctx, &store.RescueParams{
			Now: e.now(), UpSince: upSince, Limit: maintenanceLimit,
		})
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("engine: rescue expired leases", "err", err)
			}
			return
		}
		if len(jobs) > 0 {
			e.log.Info("engine: rescued expired leases", "count", len(jobs))
			e.wakeLessees()
		}
		if len(jobs) < maintenanceLimit || !e.cfg.Leader() {
			return
		}
	}
}

// settleBatches marks done the closed batches whose jobs have all ended
// but that no finisher marked (its server crashed in between).
func (e *Engine) settleBatches(ctx context.Context) {
	n, err := e.st.SettleBatches(ctx, e.now(), maintenanceLimit)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("engine: settle batches", "err", err)
		}
		return
	}
	if n > 0 {
		e.log.Info("engine: marked batches done that a lost server left unmarked", "batches", n)
	}
}

// retain deletes old terminal jobs, done batches and events.
func (e *Engine) retain(ctx context.Context) {
	for {
		now := e.now()
		res, err := e.st.Retain(ctx, &store.RetainParams{
			JobsBefore:   now.Add(-e.cfg.JobRetention),
			EventsBefore: now.Add(-e.cfg.EventRetention),
			Limit:        maintenanceLimit,
		})
		if err != nil {
			if ctx.Err() == nil {
				e.log.Error("engine: apply retention", "err", err)
			}
			return
		}
		if res.Jobs > 0 || res.Batches > 0 || res.Events > 0 {
			e.log.Debug("engine: applied retention", "jobs", res.Jobs, "batches", res.Batches, "events", res.Events)
		}
		if res.Jobs < maintenanceLimit || !e.cfg.Leader() {
			return
		}
	}
}

// pruneWorkers deletes workers lost for longer than WorkerRetention that
// hold no job, and forgets cached workers not seen for that long.
func (e *Engine) pruneWorkers(ctx context.Context) {
	now := e.now()
	before := now.Add(-e.cfg.WorkerRetention)
	n, err := e.st.PruneWorkers(ctx, before)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("engine: prune workers", "err", err)
		}
		return
	}
	if n > 0 {
		e.log.Info("engine: pruned lost workers", "count", n)
	}
	e.wmu.Lock()
	for id, ent := range e.workers {
		last := ent.fetched
		if ent.seen.After(last) {
			last = ent.seen
		}
		if last.Before(before) {
			delete(e.workers, id)
		}
	}
	e.wmu.Unlock()
}
