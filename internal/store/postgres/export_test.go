package postgres

import "context"

// ListenerPID returns the backend PID of s's listening session, 0 while it
// has none; a new PID appears once a reconnection has been reported.
func ListenerPID(s *Store) uint32 { return s.listener.backendPID() }

// HoldMainPool acquires every connection of s's main pool and returns a
// function that gives them back, to test that renewals do not starve.
func HoldMainPool(t interface{ Fatal(...any) }, s *Store) func() {
	var held []interface{ Release() }
	for range int(s.pool.Config().MaxConns) {
		c, err := s.pool.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	return func() {
		for _, c := range held {
			c.Release()
		}
	}
}

// Statements whose plans are checked.
const (
	FinishMoveSQL   = finishMoveSQL
	FinishUpdateSQL = finishUpdateSQL
	HeartbeatSQL    = heartbeatSQL
)

// SetNoSeqScan is what preferIndexes sets in a transaction.
const SetNoSeqScan = setNoSeqScan
