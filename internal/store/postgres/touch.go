package postgres

import (
	"slices"
	"sync"
	"time"
)

// touchSlackSQL is how stale (in nanoseconds) a worker's last_seen and
// last_active_at may be before a lease, finish or heartbeat writes them
// again: a tenth of the worker's lease TTL, at most a second. Every call
// of a busy worker rewriting its row would serialize its concurrent lease
// and finish transactions on that row's lock and write a row version per
// call; lost-worker detection waits at least a lease TTL, so it never
// notices the slack. The SQLite store uses the same rule.
const touchSlackSQL = `LEAST(1000000000, workers.lease_ttl_ms * 100000)`

// touchSlack is touchSlackSQL for a lease TTL in milliseconds.
func touchSlack(leaseTTLms int64) time.Duration {
	return min(time.Second, time.Duration(leaseTTLms)*100*time.Microsecond)
}

// sightings remembers what this store last wrote of each worker's row, so
// that a lease or finish within the slack of that write skips the UPDATE
// (and its round trip) the database would find nothing to do for: the
// row's times are never older than what this store wrote.
type sightings struct {
	mu sync.Mutex
	m  map[string]sighting
}

type sighting struct {
	seen, active time.Time // last writes of last_seen and last_active_at
	slack        time.Duration
}

// maxSightings bounds the memory of sightings; past it, old ones go.
const maxSightings = 10000

// stale returns the ids whose row may need writing at now.
func (s *sightings) stale(ids []string, now time.Time, active bool) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.DeleteFunc(ids, func(id string) bool {
		g, ok := s.m[id]
		if !ok || g.slack <= 0 {
			return false
		}
		fresh := now.Sub(g.seen) < g.slack
		if active {
			fresh = fresh && now.Sub(g.active) < g.slack
		}
		return fresh
	})
}

// remember records what the row of id holds (as of a commit of this store).
func (s *sightings) remember(id string, g sighting) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]sighting{}
	}
	if len(s.m) >= maxSightings {
		for k, o := range s.m {
			if g.seen.Sub(o.seen) > time.Minute || g.seen.Before(o.seen) {
				delete(s.m, k)
			}
		}
		if len(s.m) >= maxSightings {
			clear(s.m)
		}
	}
	if o, ok := s.m[id]; ok {
		// Keep the newest of each time (the row's times only grow).
		if o.seen.After(g.seen) {
			g.seen = o.seen
		}
		if o.active.After(g.active) {
			g.active = o.active
		}
	}
	s.m[id] = g
}

// forget drops what is remembered of id (its row was replaced or deleted).
func (s *sightings) forget(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, id)
}

// touchWorkers records that workers were seen (and active, holding or
// finishing jobs) at now, writing only rows whose times are older than
// their slack (see touchSlackSQL).
func (t *ptx) touchWorkers(ids []string, now time.Time, active bool) error {
	ids = slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == "" })
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	ids = t.s.sightings.stale(slices.Compact(ids), now, active)
	if len(ids) == 0 {
		return nil
	}
	set, stale := `last_seen = $1`, `workers.last_seen < $1 - `+touchSlackSQL
	if active {
		set = `last_seen = $1, last_active_at = $1`
		stale = `(` + stale + ` OR workers.last_active_at < $1 - ` + touchSlackSQL + `)`
	}
	// The rows not written are returned too, with their times: what this
	// store then remembers saves the next touches within their slack.
	rows, err := t.query(`WITH w AS (SELECT id, lease_ttl_ms, last_seen, last_active_at FROM workers WHERE id = ANY($2::text[])),
		u AS (UPDATE workers SET `+set+` FROM w WHERE workers.id = w.id AND `+stale+` RETURNING workers.id)
		SELECT w.id, w.lease_ttl_ms, w.last_seen, w.last_active_at, u.id IS NOT NULL FROM w LEFT JOIN u ON u.id = w.id`, t2i(now), ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id         string
			ttl        int64
			seen, actv int64
			written    bool
		)
		if err := rows.Scan(&id, &ttl, &seen, &actv, &written); err != nil {
			return err
		}
		g := sighting{seen: i2t(seen), active: i2t(actv), slack: touchSlack(ttl)}
		if written {
			g.seen = now
			if active {
				g.active = now
			}
		}
		t.after = append(t.after, func() { t.s.sightings.remember(id, g) })
	}
	return rows.Err()
}
