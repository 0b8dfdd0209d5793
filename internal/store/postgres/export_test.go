package postgres

// ListenerPID returns the backend PID of s's listening session, 0 while it
// has none; a new PID appears once a reconnection has been reported.
func ListenerPID(s *Store) uint32 { return s.listener.backendPID() }
