// Package event fans the store's event log out to live subscribers: a [Hub]
// tails the log (woken by store commits, backed by polling), merges in
// ephemeral progress events, and serves each [Subscription] from a
// requested sequence number without loss, or tells it that it fell behind
// the retention window.
package event

import (
	"errors"

	"github.com/gantryhq/gantry/internal/job"
)

// ErrTooOld means the requested resume point is older than the oldest
// retained event: events were lost to retention.
var ErrTooOld = errors.New("event: resume point is older than the retained events")

// Filter selects events. Empty fields match all.
type Filter struct {
	Tenant  string // "" for every tenant (admin)
	JobID   string
	BatchID string
	Queue   string
	Kinds   []string
}

// Match reports whether e passes f.
func (f *Filter) Match(e *job.Event) bool {
	if f.Tenant != "" && e.Tenant != f.Tenant {
		return false
	}
	if f.JobID != "" && e.JobID != f.JobID {
		return false
	}
	if f.BatchID != "" && e.BatchID != f.BatchID {
		return false
	}
	if f.Queue != "" && e.Queue != f.Queue {
		return false
	}
	if len(f.Kinds) > 0 {
		for _, k := range f.Kinds {
			if k == e.Kind {
				return true
			}
		}
		return false
	}
	return true
}
